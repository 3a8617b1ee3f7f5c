"""Each target of a band (acknowledge, resolve) judges from its own start: changing one of them
leaves the other's clocks judged as before, also for a clock that stopped between the pass a
change runs first and the change itself, and on a node whose clock is behind the change. On
SQLite and PostgreSQL. Defaults: high 60 / 1440 min."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from agentwatch.events.model import parse_ts
from agentwatch.soc.sla import evaluate, store
from agentwatch.soc.sla.schema import sla_events
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.support.server import RunningServer, open_settings, run_server

DAY = 86_400.0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    store.targets(eng)
    yield eng
    eng.dispose()


def _alert(engine: Engine, made: float, status: str, updated: float) -> str:
    aid = str(uuid.uuid4())
    row = {
        "id": aid,
        "dedup_key": aid,
        "type": "atr",
        "detector": "d",
        "rule_id": "r",
        "title": "t",
        "message": "",
        "severity": 7,
        "status": status,
        "first_seen": made,
        "last_seen": made,
        "created_at": made,
        "updated_at": updated,
        "count": 1,
        "entity_ids": "",
        "tags": "[]",
        "body": "{}",
    }
    with engine.begin() as conn:
        conn.execute(alerts.insert().values(row))
    return aid


def _breaches(engine: Engine, aid: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(sla_events).where(sla_events.c.alert_id == aid)).all()


def test_changing_the_acknowledge_target_leaves_the_resolve_clocks_as_they_were(engine: Engine) -> None:
    # two high alerts acknowledged in time whose resolve clock (1440 min) ran out at base + 5:
    # ``late`` is closed at base + 10, after the pass the change runs first (at base) and
    # before the change; ``waiting`` is never closed. Changing only the acknowledge target
    # must not spare ``late`` nor move ``waiting``'s breach to the time of the change
    base = time.time() - 100
    made = base + 5 - 1440 * 60
    late = _alert(engine, made, "acknowledged", made + 60)
    waiting = _alert(engine, made, "acknowledged", made + 60)
    assert evaluate.sweep(engine, base, 30 * DAY) == 0  # the pass of the change, before it
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == late).values(status="closed", updated_at=base + 10))
    changed = store.change(engine, "high", {"acknowledge_minutes": 30}, "tester")
    effective = parse_ts(changed["effective_at"])
    # a node whose clock is a minute behind the change still judges the resolve clocks
    evaluate.sweep(engine, effective - 60, 30 * DAY)
    (ev,) = _breaches(engine, late)
    assert (ev.kind, ev.limit_minutes, ev.breached_at, ev.ended_at) == ("resolve", 1440, base + 5, base + 10)
    (ev,) = _breaches(engine, waiting)
    assert (ev.kind, ev.breached_at, ev.ended_at) == ("resolve", base + 5, None)


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    with run_server(settings.model_copy(update={"sla": settings.sla.model_copy(update={"enabled": False})})) as s:
        yield s


def _band(c: Any, band: str) -> dict[str, Any]:
    r = c.get("/api/v1/sla/configs")
    assert r.status_code == 200, r.text
    return next(x for x in r.json()["configs"] if x["id"] == band)


def test_each_target_shows_its_own_start(srv: RunningServer) -> None:
    with srv.client() as c:
        fresh = _band(c, "medium")
        assert (fresh["acknowledge_effective_at"], fresh["resolve_effective_at"]) == (None, None)
        r = c.put("/api/v1/sla/configs/medium", json={"acknowledge_minutes": 100})
        assert r.status_code == 200, r.text
        ack_only = r.json()
        assert ack_only["acknowledge_effective_at"] == ack_only["effective_at"] is not None
        assert ack_only["resolve_effective_at"] is None
        # the same resolve limit again changes nothing: its start stays
        r = c.put("/api/v1/sla/configs/medium", json={"resolve_minutes": fresh["resolve_minutes"]})
        assert r.status_code == 200 and r.json()["resolve_effective_at"] is None
        assert r.json()["acknowledge_effective_at"] == ack_only["acknowledge_effective_at"]
        r = c.put("/api/v1/sla/configs/medium", json={"resolve_minutes": 5000})
        moved = r.json()
        assert moved["resolve_effective_at"] == moved["effective_at"]
        assert moved["acknowledge_effective_at"] == ack_only["acknowledge_effective_at"]
        # a band enabled again starts both targets afresh
        assert c.put("/api/v1/sla/configs/medium", json={"enabled": False}).status_code == 200
        back = c.put("/api/v1/sla/configs/medium", json={"enabled": True}).json()
        assert back["acknowledge_effective_at"] == back["resolve_effective_at"] == back["effective_at"]
        assert parse_ts(back["effective_at"]) > parse_ts(moved["effective_at"])
        assert _band(c, "medium") == back
