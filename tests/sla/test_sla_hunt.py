"""Defects found by attacking the SLA watch, each shown by a test on a real server (SQLite and
PostgreSQL). Passes run at chosen times (``pass_now(at)``); defaults: critical 15 / 240 min,
high 60 / 1440, medium 240 / 4320, low 1440 / 10080; ``sla.max_age_days`` 30."""

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
CONFIGS = "/api/v1/sla/configs"
DAY = 86_400.0


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(settings.model_copy(update={"sla": settings.sla.model_copy(update={"enabled": False})})) as s:
        yield s


def alert(s: RunningServer, severity: int, created_at: float) -> str:
    aid = make_alert(s.aw.engine, severity)
    with s.aw.engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(created_at=created_at, updated_at=created_at))
    return aid


def events(c: Any, **params: Any) -> list[dict[str, Any]]:
    r = c.get(EVENTS, params=params)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_a_breach_still_ends_when_its_alert_is_acknowledged_after_max_age(srv: RunningServer) -> None:
    # critical, made 40 days ago; a pass one hour after it was made records the acknowledge
    # breach (due 15 min after). Acknowledged today, when the alert is older than the 30 days
    # the watch looks for new breaches: its running breach must still end.
    t0 = float(int(time.time()))
    made = t0 - 40 * DAY
    aid = alert(srv, 9, made)
    watch = watch_of(srv.aw)
    watch.pass_now(made + 3600)
    with srv.client() as c:
        (ev,) = events(c, alert_id=aid)
        assert (ev["kind"], ev["breached_at"], ev["running"]) == ("acknowledge", iso(made + 900), True)
        assert c.patch(f"/api/v1/alerts/{aid}", json={"status": "acknowledged"}).status_code == 200
        acked = time.time()
        watch.pass_now(acked + 1)
        (ev,) = events(c, alert_id=aid)
        assert ev["running"] is False and ev["end_reason"] == "acknowledged", ev
        assert acked - 2 <= parse_ts(ev["ended_at"]) <= acked + 1


def test_a_pass_dated_before_a_target_change_does_not_record_breaches_after_its_own_time(
    srv: RunningServer,
) -> None:
    # high (60 min) lowered to 10 min now (E); an alert made 30 min ago is fine under 60 min
    # and due at E - 1200 under 10. A pass whose clock reads one minute earlier (a clock
    # stepped back, another node's skew) must not record a breach at E, after its own time;
    # a pass at E + 1 does.
    aid = alert(srv, 8, time.time() - 1800)
    with srv.client() as c:
        r = c.put(f"{CONFIGS}/high", json={"acknowledge_minutes": 10})
        assert r.status_code == 200, r.text
        effective = parse_ts(r.json()["effective_at"])
        watch = watch_of(srv.aw)
        watch.pass_now(effective - 60)
        assert events(c, alert_id=aid) == []
        watch.pass_now(effective + 1)
        (ev,) = events(c, alert_id=aid)
        assert ev["limit_minutes"] == 10 and parse_ts(ev["breached_at"]) == pytest.approx(effective, abs=0.001)


def _finding(n: int) -> Finding:
    ent = {"type": "host", "value": f"hunt{n}", "id": entity_id("host", f"hunt{n}")}
    event = Event(
        body={}, event_id=f"hunt-e{n}", event_type="ai.request", ts=1000.0, received_at=1000.0, entities=[ent]
    )
    return Finding("atr", f"hunt-rule-{n}", "Hunt", 9, [event], alert_type="atr", dedup_key=f"hunt-{n}")


def test_an_alert_deleted_and_made_again_is_not_judged_by_the_old_ones_marks(srv: RunningServer) -> None:
    # the same finding replayed after its alert was deleted makes an alert with the same id;
    # the first one was acknowledged in time, the new one never is: 15 min after it was
    # made, it breaches (the old acknowledgement must not count for it)
    engine = srv.aw.engine
    ((first, _),) = store_findings(engine, [_finding(1)], 300)
    watch = watch_of(srv.aw)
    with srv.client() as c:
        assert c.patch(f"/api/v1/alerts/{first['id']}", json={"status": "acknowledged"}).status_code == 200
        watch.pass_now(time.time())  # the acknowledgement is marked
        assert c.delete(f"/api/v1/alerts/{first['id']}").status_code == 204
        ((again, is_new),) = store_findings(engine, [_finding(1)], 300)
        assert is_new and again["id"] == first["id"]
        made = parse_ts(again["created_at"])
        watch.pass_now(made + 1200)
        (ev,) = events(c, alert_id=again["id"])
        assert (ev["kind"], ev["due_at"], ev["running"]) == ("acknowledge", iso(made + 900), True)


def test_changing_one_target_keeps_the_breach_the_other_one_already_had(srv: RunningServer) -> None:
    # medium (240 min to acknowledge), made 6 h ago, acknowledged 1 h ago: 60 min late (due
    # t0 - 7200), and no pass ran since. Changing only the resolve target now must not
    # erase that acknowledge breach, made under a target that never changed.
    t0 = float(int(time.time()))
    aid = alert(srv, 5, t0 - 6 * 3600)
    with srv.aw.engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == aid).values(status="acknowledged", updated_at=t0 - 3600))
    with srv.client() as c:
        r = c.put(f"{CONFIGS}/medium", json={"resolve_minutes": 5000})
        assert r.status_code == 200, r.text
        watch_of(srv.aw).pass_now(time.time() + 1)
        (ev,) = events(c, alert_id=aid)
        assert (ev["kind"], ev["limit_minutes"], ev["breached_at"]) == ("acknowledge", 240, iso(t0 - 7200))
        assert (ev["running"], ev["end_reason"], ev["ended_at"]) == (False, "acknowledged", iso(t0 - 3600))
