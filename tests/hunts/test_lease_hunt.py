"""A hunt run on a real store, SQLite and PostgreSQL: clocks that disagree between nodes, a run
whose lease expired and was taken over while it was still going, and events stored between the
pages of a run."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agentwatch.events.model import Event
from agentwatch.hunts import runner, store
from agentwatch.hunts.definition import Hunt, parse
from agentwatch.hunts.settings import HuntSettings
from agentwatch.store.engine import make_engine
from agentwatch.store.events import commit_batch
from agentwatch.store.migrate import migrate
from tests.hunts.helpers import definition
from tests.support.services import database_for


@pytest.fixture
def pg_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated PostgreSQL store only: a SQLite store lives on one host, with one clock."""
    databases = database_for("postgresql", tmp_path)
    eng = make_engine(next(databases))
    try:
        migrate(eng)
        yield eng
    finally:
        eng.dispose()
        databases.close()


@pytest.mark.postgres
def test_a_node_whose_clock_runs_ahead_does_not_take_a_live_lease(
    pg_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = pg_engine
    assert store.take_lease(engine, "skew", "node-a", 120)  # node A, clock right, 2 min
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 300)  # node B: 5 min ahead
    assert not store.take_lease(engine, "skew", "node-b", 120)
    monkeypatch.setattr(time, "time", lambda: real() - 300)  # node C: 5 min behind
    assert store.take_lease(engine, "skew", "node-a", 120)  # A itself renews
    monkeypatch.undo()
    assert not store.take_lease(engine, "skew", "node-b", 120)


def test_a_run_that_lost_its_lease_stops_with_an_error(engine: Engine) -> None:
    got = parse("lost.yml", definition("lost").encode(), 60)
    assert isinstance(got, Hunt)
    assert store.take_lease(engine, "lost", "node-a", -1)  # A's lease ran out mid-run...
    assert store.take_lease(engine, "lost", "node-b", 60)  # ...and B took the hunt over
    keep = lambda: store.renew_lease(engine, "lost", "node-a", 60)  # noqa: E731
    done, _ = runner.execute(engine, got, HuntSettings(), "schedule", keep)
    assert done.status == "error"
    assert done.error == "lease: another node took the hunt over (the lease expired); stopped"
    assert done.scanned == 0
    assert not store.renew_lease(engine, "lost", "node-a", 60)
    assert store.renew_lease(engine, "lost", "node-b", 60)  # B's lease stands
    assert not store.take_lease(engine, "lost", "node-a", 60)


def _events(tag: str, count: int, ts: float) -> list[Event]:
    return [
        Event(
            body={"event_type": "agent.tool_call", "data": {"note": f"needle-{tag}"}},
            event_id=f"{tag}-{ts:.0f}-{i}",
            event_type="agent.tool_call",
            ts=ts + i,
            received_at=time.time(),
        )
        for i in range(count)
    ]


def test_events_stored_between_pages_neither_repeat_nor_shift_a_run(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:8]
    commit_batch(engine, _events(tag, 1100, time.time() - 3600))  # two pages: 1,000 and 100
    got = parse("late.yml", definition("late", body=f"indicators: [needle-{tag}]\n").encode(), 60)
    assert isinstance(got, Hunt)
    pages: list[int] = []

    def between_pages() -> bool:  # late events (older than the run's start) land after page one
        pages.append(len(pages))
        if len(pages) == 2:
            commit_batch(engine, _events(f"{tag}-late", 10, time.time() - 5))
        return True

    done, _ = runner.execute(engine, got, HuntSettings(), "manual", between_pages)
    assert pages == [0, 1]
    # one snapshot for the whole run: the 1,100 events there were at its start, each once
    assert (done.query_total, done.scanned, done.matched) == (1100, 1100, 1100)
    assert done.body["indicators"] == [{"value": f"needle-{tag}", "matched": 1100}]


def test_nodes_racing_for_a_lease_let_exactly_one_in(engine: Engine) -> None:
    for round_ in range(5):
        hunt_id = f"race-{uuid.uuid4().hex[:8]}"
        if round_ % 2:  # an expired lease to take over, not a missing one
            assert store.take_lease(engine, hunt_id, "dead-node", -1)
        start = threading.Barrier(6)

        def node(n: int, hunt_id: str = hunt_id, start: threading.Barrier = start) -> bool:
            start.wait()
            return store.take_lease(engine, hunt_id, f"node-{n}", 60)

        with ThreadPoolExecutor(6) as pool:
            won = list(pool.map(node, range(6)))
        assert won.count(True) == 1, (round_, won)
