"""UEBA on a real server, on SQLite and PostgreSQL: a host's baseline built from three
event-time days of ordinary work, then an off-hours event, a new tool and a burst each raise an
anomaly with its reason and a ``ueba`` alert; the warm-up, a reset and the baseline's shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.detect.helpers import wait_for
from tests.support.server import RunningServer, open_settings, run_server
from tests.ueba.helpers import UEBA, anomalies, at, host_id, ingest, ordinary_days, tool_event, ueba_alerts

BASELINES = "/api/v1/ueba/baselines"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(base.model_copy(update={"ueba": Settings(ueba=UEBA).ueba})) as s:
        yield s


def unique() -> str:
    return f"h-{uuid.uuid4().hex[:10]}"


def learnt(c, host: str) -> None:  # type: ignore[no-untyped-def]
    ingest(c, ordinary_days(host))
    assert anomalies(c, host) == []  # three ordinary days raise nothing


def test_three_ordinary_days_make_an_active_baseline(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        r = c.get(f"{BASELINES}/{host_id(host)}")
        assert r.status_code == 200, r.text
        b = r.json()
        assert b["status"] == "active" and b["event_count"] == 54
        assert b["entity"] == {"id": host_id(host), "type": "host", "value": host}
        assert b["first_seen"] == "2026-01-05T09:10:00Z"
        assert b["last_seen"] == "2026-01-07T17:40:00Z"
        # two calls in each hour from 09 to 17, on three days: 6 per working hour
        assert b["hour_of_day"]["counts"] == [0] * 9 + [6] * 9 + [0] * 6
        assert b["hour_of_day"]["shares"][9] == round(6 / 54, 4)
        assert b["top_templates"] == [{"value": "tool:read_file", "count": 27}, {"value": "tool:search", "count": 27}]
        assert {"value": "type:agent.tool_call", "count": 54} in b["top_sources"]
        # every bucket held 2 events; the last one (day 2, 17:00) is still being filled
        assert b["volume"]["ema"] == 2.0 and b["volume"]["current_bucket_count"] == 2
        seer = c.get(f"/api/v1/entities/{host_id(host)}/baseline")
        assert seer.status_code == 200 and seer.json()["event_count"] == 54


def test_an_off_hours_event_is_a_rare_hour_anomaly_with_an_alert(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        ingest(c, [tool_event(host, at(3, 3, 15))])
        (a,) = wait_for(lambda: anomalies(c, host))
        assert [r["kind"] for r in a["reasons"]] == ["rare_hour"]
        assert a["reasons"][0]["hours"] == [{"hour": 3, "share": 0.0}]
        assert a["score"] == 0.6 and a["severity"] == 6  # weight_rare_hour alone
        assert a["ts"] == "2026-01-08T03:15:00Z" and len(a["event_ids"]) == 1
        (alert,) = wait_for(lambda: ueba_alerts(c, host))
        assert alert["id"] == a["alert_id"] and alert["rule_id"] == "AW-UEBA-RARE_HOUR"
        assert alert["type"] == "ueba" and alert["severity"] == 6
        got = c.get(f"/api/v1/ueba/anomalies/{a['id']}")
        assert got.status_code == 200 and got.json() == a


def test_a_new_tool_is_a_new_template_anomaly(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        ingest(c, [tool_event(host, at(3, 10, 5), "upload_to_pastebin")])
        (a,) = wait_for(lambda: anomalies(c, host))
        assert a["reasons"] == [{"kind": "new_template", "values": ["tool:upload_to_pastebin"]}]
        assert a["score"] == 0.6
        (alert,) = wait_for(lambda: ueba_alerts(c, host))
        assert alert["rule_id"] == "AW-UEBA-NEW_TEMPLATE"
        # the same tool again is no longer new: it was learnt
        ingest(c, [tool_event(host, at(3, 10, 30), "upload_to_pastebin")])
        assert len(anomalies(c, host)) == 1


def test_reasons_add_up_and_a_new_source_alone_stays_under_the_threshold(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        connect = {"event_type": "network.connect", "host": {"hostname": host}, "data": {"dest": {"port": 443}}}
        ingest(c, [{**connect, "ts": at(3, 11)}])  # weight_new_source 0.4 < score_threshold 0.5
        assert anomalies(c, host) == []
        ingest(c, [tool_event(host, at(3, 4), "wipe_disk")])  # rare hour and new tool: 1 - 0.4 * 0.4
        (a,) = wait_for(lambda: anomalies(c, host))
        assert [r["kind"] for r in a["reasons"]] == ["new_template", "rare_hour"]
        assert a["score"] == 0.84 and a["severity"] == 8
        assert anomalies(c, host, reason="rare_hour") == [a] and anomalies(c, host, reason="burst") == []


def test_a_burst_over_the_volume_ema_is_reported_once_per_bucket(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        # 30 calls in the 11:00 bucket against an EMA of 2 per bucket: the 10th passes both
        # volume_min_events (10) and volume_factor x EMA (6)
        ingest(c, [tool_event(host, at(3, 11, m)) for m in range(30)])
        (a,) = wait_for(lambda: anomalies(c, host))
        assert a["reasons"] == [
            {"kind": "burst", "bucket_start": a["reasons"][0]["bucket_start"], "count": 10, "ema": 2.0}
        ]
        assert a["ts"] == "2026-01-08T11:09:00Z" and a["score"] == 0.7
        (alert,) = wait_for(lambda: ueba_alerts(c, host))
        assert alert["rule_id"] == "AW-UEBA-BURST"
        ingest(c, [tool_event(host, at(3, 11, 45))])  # the same bucket: not reported again
        assert len(anomalies(c, host)) == 1


def test_repeats_of_one_reason_merge_into_one_alert(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        ingest(c, [tool_event(host, at(3, 2, 0))])
        ingest(c, [tool_event(host, at(3, 2, 1))])  # hour 2 holds 1/55 < 2 %: rare again, a minute later
        wait_for(lambda: len(anomalies(c, host)) == 2)
        (alert,) = wait_for(lambda: ueba_alerts(c, host))
        assert alert["count"] == 2


def test_warm_up_is_answered_as_documented(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        ingest(c, [tool_event(host, at(0, 9, m)) for m in range(10)])
        seer = c.get(f"/api/v1/entities/{host_id(host)}/baseline")
        assert seer.status_code == 404
        body = seer.json()
        assert body["status"] == "warming_up" and body["error"]["code"] == "NOT_FOUND"
        assert body["error"]["details"]["warmup"] == {
            "events": 10,
            "events_needed": 24,
            "span_s": 540.0,
            "span_needed_s": 172800.0,
        }
        aisoc = c.get(f"{BASELINES}/{host_id(host)}")
        assert aisoc.status_code == 200 and aisoc.json()["status"] == "warming_up"
        # an off-hours event and a new tool during the warm-up are learnt, not flagged
        ingest(c, [tool_event(host, at(0, 3), "something_new")])
        assert anomalies(c, host) == []
        # an entity no event named, and one of a type without baselines
        unknown = c.get(f"/api/v1/entities/{uuid.uuid4()}/baseline")
        assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "entity not found"
        path = f"/tmp/{host}"
        ingest(c, [{"event_type": "file.write", "ts": at(0, 9), "host": {"hostname": host}, "data": {"path": path}}])
        from agentwatch.events.entities import entity_id

        untracked = c.get(f"/api/v1/entities/{entity_id('file', path)}/baseline")
        assert untracked.status_code == 404 and untracked.json()["error"]["details"]["status"] == "no_baseline"


def test_a_reset_forgets_the_baseline_and_learning_starts_again(srv: RunningServer) -> None:
    host = unique()
    with srv.client() as c:
        learnt(c, host)
        assert c.delete(f"{BASELINES}/{host_id(host)}").status_code == 204
        assert c.get(f"{BASELINES}/{host_id(host)}").status_code == 404
        assert c.delete(f"{BASELINES}/{host_id(host)}").status_code == 404
        ingest(c, [tool_event(host, at(3, 3), "wipe_disk")])  # would be an anomaly before the reset
        assert anomalies(c, host) == []
        b = c.get(f"{BASELINES}/{host_id(host)}").json()
        assert (b["status"], b["event_count"]) == ("warming_up", 1)
        listed = c.get(BASELINES, params={"status": "warming_up", "limit": 500}).json()
        assert host_id(host) in {x["entity"]["id"] for x in listed["baselines"]}


def test_baselines_page_with_a_cursor_and_stats_count(srv: RunningServer) -> None:
    hosts = [unique() for _ in range(3)]
    with srv.client() as c:
        for h in hosts:
            ingest(c, [tool_event(h, at(40, 9))])
        first = c.get(BASELINES, params={"limit": 2, "status": "warming_up"}).json()
        assert len(first["baselines"]) == 2 and first["next_cursor"]
        rest = c.get(BASELINES, params={"limit": 500, "status": "warming_up", "cursor": first["next_cursor"]}).json()
        ids = [b["entity"]["id"] for b in first["baselines"] + rest["baselines"]]
        assert len(ids) == len(set(ids)) == first["total"]
        stats = c.get("/api/v1/ueba/stats").json()
        assert stats["baselines"]["stored"] == stats["baselines"]["active"] + stats["baselines"]["warming_up"]
        assert stats["baselines"]["warming_up"] >= 3
        assert stats["anomalies"]["total"] == c.get("/api/v1/ueba/anomalies").json()["total"]
