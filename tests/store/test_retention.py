"""Event retention (``maintenance.events_retention_days``): events stored before the cutoff are
deleted oldest first, page by page, with the stats totals and entity index counts they made;
events stored after it, and everything else, stay. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agentwatch.config import Settings
from agentwatch.entities.index import EntityIndexStage
from agentwatch.events.entities import derive
from agentwatch.events.model import Event
from agentwatch.maintenance import builtin_chores
from agentwatch.store import counters, retention
from agentwatch.store.entities_schema import entities
from agentwatch.store.events import commit_batch
from agentwatch.store.schema import events

DAY = 86_400.0
NOW = 1_780_000_000.0


def ev(event_id: str, received_at: float, host: str, ts: float = NOW) -> Event:
    body: dict[str, Any] = {"event_id": event_id, "event_type": "process.exec", "host": {"hostname": host}}
    e = Event(body=body, event_id=event_id, event_type="process.exec", ts=ts, received_at=received_at)
    e.entities = derive(e)
    return e


def stored_ids(engine) -> list[str]:  # noqa: ANN001
    with engine.connect() as conn:
        return list(conn.execute(select(events.c.event_id).order_by(events.c.seq)).scalars())


def host_count(engine, host: str) -> int | None:  # noqa: ANN001
    with engine.connect() as conn:
        return conn.execute(select(entities.c.event_count).where(entities.c.value == host)).scalar()


def commit(engine, batch: list[Event]) -> None:  # noqa: ANN001
    commit_batch(engine, batch, [EntityIndexStage().in_commit])


def test_events_stored_before_the_cutoff_go_with_their_totals_and_index_counts(engine):
    commit(engine, [ev(f"old{i}", NOW - 40 * DAY + i, "web-old") for i in range(3)])
    commit(engine, [ev("mixed-old", NOW - 31 * DAY, "web-new"), ev("new1", NOW - DAY, "web-new")])
    commit(engine, [ev("new2", NOW, "web-new")])

    removed = retention.purge_events(engine, NOW - 30 * DAY)

    assert removed == 4
    assert stored_ids(engine) == ["new1", "new2"]
    assert counters.read(engine, ["event_type"]).family("event_type").top == {"process.exec": 2.0}
    assert host_count(engine, "web-old") is None  # no stored event names it any more
    assert host_count(engine, "web-new") == 2


def test_the_age_is_the_time_stored_not_the_event_time(engine):
    # last year's event, stored today, is kept; today's event stored long ago (by the clock) goes
    commit(engine, [ev("stored-long-ago", NOW - 90 * DAY, "h", ts=NOW), ev("sent-late", NOW, "h", ts=NOW - 365 * DAY)])
    assert retention.purge_events(engine, NOW - 30 * DAY) == 1
    assert stored_ids(engine) == ["sent-late"]


def test_a_purge_of_many_pages_removes_them_all_and_stops_at_the_first_kept(engine, monkeypatch):
    monkeypatch.setattr(retention, "PAGE", 7)
    commit(engine, [ev(f"o{i:03d}", NOW - 50 * DAY + i, "h") for i in range(30)])
    commit(engine, [ev(f"k{i}", NOW, "h") for i in range(5)])
    assert retention.purge_events(engine, NOW - DAY) == 30
    assert stored_ids(engine) == [f"k{i}" for i in range(5)]
    assert host_count(engine, "h") == 5
    assert retention.purge_events(engine, NOW - DAY) == 0  # nothing left to do


def test_a_stopping_purge_returns_between_two_pages(engine, monkeypatch):
    monkeypatch.setattr(retention, "PAGE", 5)
    commit(engine, [ev(f"o{i:03d}", NOW - 50 * DAY + i, "h") for i in range(20)])
    stopping = threading.Event()
    stopping.set()
    assert retention.purge_events(engine, NOW, stopping) == 0
    assert len(stored_ids(engine)) == 20


@pytest.mark.parametrize(("days", "present"), [(0, False), (7, True)])
def test_the_retention_chore_runs_only_when_a_period_is_set(tmp_path: Path, days: int, present: bool):
    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"events_retention_days": days})
        engine = None

    names = [c.name for c in builtin_chores(App())]
    assert ("events_retention" in names) is present


def test_the_period_is_bounded(tmp_path: Path):
    with pytest.raises(ValueError, match="events_retention_days"):
        Settings(data_dir=tmp_path, maintenance={"events_retention_days": -1})


def test_the_chore_deletes_through_the_settings_period(engine, tmp_path: Path):
    import time

    now = time.time()
    commit(engine, [ev("old", now - 10 * DAY, "h"), ev("recent", now - 2 * DAY, "h")])

    class App:
        settings = Settings(data_dir=tmp_path, maintenance={"events_retention_days": 7})

    App.engine = engine
    [chore] = [c for c in builtin_chores(App()) if c.name == "events_retention"]
    assert chore.run(threading.Event()) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1
    assert stored_ids(engine) == ["recent"]
