"""``/api/v1/sla``: targets per severity band and the breaches the SLA watch records, on a real
server on SQLite and PostgreSQL. The watch's periodic pass is off here: each test runs a pass at
a time it chooses (``pass_now(at)``), so every expected time is worked out from the alert's
(backdated) creation and the targets. Defaults: critical 15 min / 240 min, high 60 / 1440,
medium 240 / 4320, low 1440 / 10080."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from agentwatch.events.model import iso, parse_ts
from agentwatch.soc.sla.watch import watch_of
from agentwatch.store.alerts_schema import alerts
from tests.soc.helpers import make_alert
from tests.support.server import RunningServer, open_settings, run_server

EVENTS = "/api/v1/sla/events"
CONFIGS = "/api/v1/sla/configs"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(settings.model_copy(update={"sla": settings.sla.model_copy(update={"enabled": False})})) as s:
        yield s


def alert(s: RunningServer, severity: int, created_at: float, **stored: Any) -> str:
    """A real alert (through the recorder), created at ``created_at`` (backdated in the store)."""
    aid = make_alert(s.aw.engine, severity)
    with s.aw.engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(created_at=created_at, **stored))
    return aid


def events(c: Any, **params: Any) -> list[dict[str, Any]]:
    r = c.get(EVENTS, params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def patch(c: Any, aid: str, status: str) -> None:
    assert c.patch(f"/api/v1/alerts/{aid}", json={"status": status}).status_code == 200


def test_defaults_are_seeded_one_per_band(srv: RunningServer) -> None:
    with srv.client() as c:
        configs = c.get(CONFIGS).json()["configs"]
    got = {
        x["id"]: (x["severity_min"], x["severity_max"], x["acknowledge_minutes"], x["resolve_minutes"]) for x in configs
    }
    assert got == {
        "critical": (9, 10, 15, 240),
        "high": (7, 8, 60, 1440),
        "medium": (4, 6, 240, 4320),
        "low": (0, 3, 1440, 10080),
    }
    assert all(x["enabled"] and x["effective_at"] is None for x in configs)


def test_unacknowledged_then_unresolved_alerts_breach_and_end_when_handled(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    a = alert(srv, 9, t0 - 1200)  # critical, 20 min old: acknowledge due at t0 - 300
    b = alert(srv, 10, t0 - 600)  # critical, 10 min old: due at t0 + 300
    watch = watch_of(srv.aw)
    watch.pass_now(t0)
    with srv.client() as c:
        (ev,) = events(c, alert_id=a)
        assert (ev["kind"], ev["band"], ev["severity"], ev["limit_minutes"]) == ("acknowledge", "critical", 9, 15)
        assert ev["breached_at"] == iso(t0 - 300) and ev["due_at"] == iso(t0 - 300)
        assert ev["started_at"] == iso(t0 - 1200)
        assert ev["running"] is True and ev["ended_at"] is None
        assert ev["elapsed_s"] >= 1200
        assert events(c, alert_id=b) == []

        patch(c, a, "acknowledged")
        handled = time.time()
        watch.pass_now(t0 + 60)
        (ev,) = events(c, alert_id=a)
        assert ev["running"] is False and ev["end_reason"] == "acknowledged"
        assert t0 - 1 <= parse_ts(ev["ended_at"]) <= handled + 1
        assert ev["elapsed_s"] == pytest.approx(parse_ts(ev["ended_at"]) - (t0 - 1200), abs=0.01)

        # four hours on: a's resolve clock (240 min from t0 - 1200) ran out at t0 + 13200;
        # b was never acknowledged (due t0 + 300) nor resolved (due t0 - 600 + 14400)
        watch.pass_now(t0 + 14400)
        got = {(e["kind"], e["breached_at"], e["running"]) for e in events(c, alert_id=a)}
        assert got == {("acknowledge", iso(t0 - 300), False), ("resolve", iso(t0 + 13200), True)}
        got = {(e["kind"], e["breached_at"]) for e in events(c, alert_id=b)}
        assert got == {("acknowledge", iso(t0 + 300)), ("resolve", iso(t0 + 13800))}
        window = events(c, kind="resolve", band="critical", since=iso(t0 + 13500), until=iso(t0 + 14000))
        assert b in {e["alert_id"] for e in window} and a not in {e["alert_id"] for e in window}

        patch(c, a, "closed")
        watch.pass_now(t0 + 14460)
        (res,) = events(c, alert_id=a, kind="resolve")
        assert res["end_reason"] == "closed" and res["running"] is False
        assert events(c, alert_id=a, state="running") == []
        assert {e["kind"] for e in events(c, alert_id=b, state="running")} == {"acknowledge", "resolve"}


def test_an_alert_acknowledged_in_time_does_not_breach(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    a = alert(srv, 7, t0 - 1800)  # high: 60 min to acknowledge; acknowledged after 30 min
    with srv.client() as c:
        patch(c, a, "acknowledged")
        watch_of(srv.aw).pass_now(t0 + 7200)
        assert events(c, alert_id=a) == []


def test_a_changed_target_judges_going_forward_and_past_breaches_keep_theirs(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    running = alert(srv, 5, t0 - 1800)  # medium, open for 30 min
    # acknowledged 30 min after it was made, 20 min ago: fine under 240 min
    settled = alert(srv, 5, t0 - 3000, status="acknowledged", updated_at=t0 - 1200)
    watch = watch_of(srv.aw)
    watch.pass_now(t0)
    with srv.client() as c:
        assert events(c, alert_id=running) == [] and events(c, alert_id=settled) == []
        r = c.put(f"{CONFIGS}/medium", json={"acknowledge_minutes": 10})
        assert r.status_code == 200, r.text
        changed = r.json()
        assert (changed["acknowledge_minutes"], changed["resolve_minutes"]) == (10, 4320)
        effective = parse_ts(changed["effective_at"])
        watch.pass_now(time.time() + 1)
        # due at t0 - 1200 under the new target, before it took effect: breached when it did
        (ev,) = events(c, alert_id=running)
        assert ev["limit_minutes"] == 10 and ev["due_at"] == iso(t0 - 1200)
        assert parse_ts(ev["breached_at"]) == pytest.approx(effective, abs=0.001)
        # acknowledged after 30 min, but before the 10 min target existed: not judged by it
        assert events(c, alert_id=settled) == []
        assert c.put(f"{CONFIGS}/medium", json={"acknowledge_minutes": 240}).status_code == 200
        watch.pass_now(time.time() + 2)
        assert events(c, alert_id=running)[0]["limit_minutes"] == 10


def test_a_disabled_band_records_nothing_until_enabled_again(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    a = alert(srv, 2, t0 - 2 * 86400)  # low, two days unacknowledged (1440 min target)
    watch = watch_of(srv.aw)
    with srv.client() as c:
        assert c.put(f"{CONFIGS}/low", json={"enabled": False}).json()["enabled"] is False
        watch.pass_now(t0)
        assert events(c, alert_id=a) == []
        back = c.put(f"{CONFIGS}/low", json={"enabled": True}).json()
        watch.pass_now(time.time() + 1)
        (ev,) = events(c, alert_id=a)
        assert ev["due_at"] == iso(t0 - 86400)
        assert ev["breached_at"] == back["effective_at"]


def test_a_deleted_alert_ends_its_running_breach(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    a = alert(srv, 9, t0 - 3600)
    watch = watch_of(srv.aw)
    watch.pass_now(t0)
    with srv.client() as c:
        assert events(c, alert_id=a)[0]["running"] is True
        assert c.delete(f"/api/v1/alerts/{a}").status_code == 204
        watch.pass_now(t0 + 10)
        (ev,) = events(c, alert_id=a)
        assert (ev["end_reason"], ev["ended_at"]) == ("deleted", iso(t0 + 10))


def test_events_page_by_cursor_latest_breach_first(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    made = [alert(srv, 9, t0 - 3600 - 60 * i) for i in range(5)]  # breached 1 min apart
    watch_of(srv.aw).pass_now(t0)
    with srv.client() as c:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"kind": "acknowledge", "band": "critical", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get(EVENTS, params=params).json()
            seen += page["events"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids))
    times = [parse_ts(e["breached_at"]) for e in seen]
    assert times == sorted(times, reverse=True)
    mine = [e["alert_id"] for e in seen if e["alert_id"] in made]
    assert mine == made  # the youngest alert breached last, so it comes first


BAD_PUT = [
    ({"acknowledge_minutes": 0}, "acknowledge_minutes"),
    ({"acknowledge_minutes": "15"}, "acknowledge_minutes"),
    ({"acknowledge_minutes": 43201}, "acknowledge_minutes"),
    ({"resolve_minutes": 129601}, "resolve_minutes"),
    ({"acknowledge_minutes": 300, "resolve_minutes": 200}, "resolve_minutes"),
    ({"resolve_minutes": 10}, "resolve_minutes"),  # below high's 60 min to acknowledge
    ({"enabled": None}, "enabled"),
    ({"enabled": "yes"}, "enabled"),
    ({}, "body"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("body", "named"), BAD_PUT, ids=[f"{b[1]}{i}" for i, b in enumerate(BAD_PUT)])
def test_bad_targets_get_a_400_naming_the_field(srv: RunningServer, body: dict[str, Any], named: str) -> None:
    with srv.client() as c:
        r = c.put(f"{CONFIGS}/high", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(named)
        high = next(x for x in c.get(CONFIGS).json()["configs"] if x["id"] == "high")
        assert (high["acknowledge_minutes"], high["resolve_minutes"]) == (60, 1440)


BAD_QUERY = [
    {"kind": "snooze"},
    {"band": "urgent"},
    {"state": "paused"},
    {"since": "yesterday"},
    {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    {"cursor": "garbage"},
    {"limit": 0},
    {"limit": 1001},
    {"alert_id": "bad id!"},
    {"colour": "red"},
]


@pytest.mark.parametrize("params", BAD_QUERY, ids=[next(iter(p)) + str(i) for i, p in enumerate(BAD_QUERY)])
def test_bad_event_queries_get_a_400_naming_the_parameter(srv: RunningServer, params: dict[str, Any]) -> None:
    with srv.client() as c:
        r = c.get(EVENTS, params=params)
    assert r.status_code == 400, r.text
    named = "until" if "until" in params else next(iter(params))
    assert named in r.json()["error"]["message"]


def test_an_unknown_band_is_404(srv: RunningServer) -> None:
    with srv.client() as c:
        assert c.put(f"{CONFIGS}/urgent", json={"enabled": False}).status_code == 404
