"""An alert has SLA clocks once per life: a life starts when the alert is stored, and again
each time the watch sees it reopened after it saw it closed, or sees it made again (same id)
after it was deleted. A breach is recorded at most once per alert, kind and life. On a real
server, SQLite and PostgreSQL; passes run at chosen times. Defaults: critical 15 / 240 min."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event, iso, parse_ts
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.sla.watch import watch_of
from agentwatch.store.alerts_schema import alerts
from tests.soc.helpers import make_alert
from tests.support.server import RunningServer, open_settings, run_server

EVENTS = "/api/v1/sla/events"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(settings.model_copy(update={"sla": settings.sla.model_copy(update={"enabled": False})})) as s:
        yield s


def events(c: Any, **params: Any) -> list[dict[str, Any]]:
    r = c.get(EVENTS, params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def patch(c: Any, aid: str, status: str) -> float:
    """Set the alert's status; the alert's ``updated_at`` afterwards (when the change was made)."""
    r = c.patch(f"/api/v1/alerts/{aid}", json={"status": status})
    assert r.status_code == 200, r.text
    return parse_ts(r.json()["updated_at"])


def test_a_reopened_alert_breaches_again_and_only_once_in_its_new_life(srv: RunningServer) -> None:
    # critical, made an hour ago and never acknowledged: an acknowledge breach (due after
    # 15 min). Closed, then reopened: both clocks start again at the reopening, so 15 min
    # later it breaches again (a second breach, notified as a new event), 4 h later its
    # resolve clock too; more passes over the same life record nothing more
    t0 = float(int(time.time()))
    aid = make_alert(srv.aw.engine, 9)
    with srv.aw.engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(created_at=t0 - 3600, updated_at=t0 - 3600))
    watch = watch_of(srv.aw)
    watch.pass_now(t0)
    with srv.client() as c:
        (first,) = events(c, alert_id=aid)
        assert (first["kind"], first["started_at"], first["running"]) == ("acknowledge", iso(t0 - 3600), True)
        closed = patch(c, aid, "closed")
        watch.pass_now(closed + 1)
        (first,) = events(c, alert_id=aid)
        assert first["running"] is False and parse_ts(first["ended_at"]) == pytest.approx(closed, abs=0.001)

        reopened = patch(c, aid, "open")
        watch.pass_now(reopened + 1)  # sees the reopening: a new life, nothing due yet
        assert len(events(c, alert_id=aid)) == 1
        watch.pass_now(reopened + 1000)
        watch.pass_now(reopened + 1100)
        got = events(c, alert_id=aid)
        assert len(got) == 2, got
        again = got[0]  # the latest breach first
        assert again["id"] != first["id"]
        assert (again["kind"], again["running"]) == ("acknowledge", True)
        assert parse_ts(again["started_at"]) == pytest.approx(reopened, abs=0.001)
        assert parse_ts(again["breached_at"]) == pytest.approx(reopened + 900, abs=0.001)
        assert [e["id"] for e in events(c, alert_id=aid, state="running")] == [again["id"]]

        watch.pass_now(reopened + 4 * 3600 + 10)
        watch.pass_now(reopened + 4 * 3600 + 20)
        kinds = sorted((e["kind"], e["started_at"]) for e in events(c, alert_id=aid))
        assert kinds == sorted(
            [
                ("acknowledge", iso(t0 - 3600)),
                ("acknowledge", again["started_at"]),
                ("resolve", again["started_at"]),
            ]
        )
        # the first life's resolve clock (due t0 + 10800) stopped at its closing, in time
        acked = patch(c, aid, "acknowledged")
        watch.pass_now(reopened + 4 * 3600 + 30)
        ended = {e["kind"]: e for e in events(c, alert_id=aid) if e["started_at"] == again["started_at"]}
        assert ended["acknowledge"]["end_reason"] == "acknowledged"
        assert parse_ts(ended["acknowledge"]["ended_at"]) == pytest.approx(acked, abs=0.001)
        assert ended["resolve"]["running"] is True


def test_an_alert_reopened_as_acknowledged_runs_only_its_resolve_clock(srv: RunningServer) -> None:
    t0 = float(int(time.time()))
    aid = make_alert(srv.aw.engine, 9)
    with srv.aw.engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(created_at=t0 - 600, updated_at=t0 - 600))
    watch = watch_of(srv.aw)
    with srv.client() as c:
        patch(c, aid, "closed")  # in time
        watch.pass_now(time.time())
        reopened = patch(c, aid, "acknowledged")
        watch.pass_now(reopened + 1)
        watch.pass_now(reopened + 4 * 3600 + 10)
        (ev,) = events(c, alert_id=aid)
        assert ev["kind"] == "resolve" and parse_ts(ev["started_at"]) == pytest.approx(reopened, abs=0.001)


def _finding() -> Finding:
    ent = {"type": "host", "value": "lives", "id": entity_id("host", "lives")}
    event = Event(body={}, event_id="lives-e1", event_type="ai.request", ts=1000.0, received_at=1000.0, entities=[ent])
    return Finding("atr", "lives-rule", "Lives", 9, [event], alert_type="atr", dedup_key="lives-1")


def test_an_alert_deleted_and_made_again_breaches_again(srv: RunningServer) -> None:
    # the same finding replayed after its breached alert was deleted makes an alert with the
    # same id: another alert, whose own breach must be recorded beside the first one's
    engine = srv.aw.engine
    ((first, _),) = store_findings(engine, [_finding()], 300)
    made = parse_ts(first["created_at"])
    watch = watch_of(srv.aw)
    watch.pass_now(made + 1200)
    with srv.client() as c:
        (old,) = events(c, alert_id=first["id"])
        assert c.delete(f"/api/v1/alerts/{first['id']}").status_code == 204
        ((again, is_new),) = store_findings(engine, [_finding()], 300)
        assert is_new and again["id"] == first["id"]
        remade = parse_ts(again["created_at"])
        watch.pass_now(remade + 1200)
        watch.pass_now(remade + 1300)
        got = {e["started_at"]: e for e in events(c, alert_id=first["id"])}
        assert set(got) == {old["started_at"], iso(remade)}
        assert got[old["started_at"]]["end_reason"] == "deleted"
        assert (got[iso(remade)]["kind"], got[iso(remade)]["running"]) == ("acknowledge", True)
