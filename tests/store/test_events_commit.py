"""Committing events: each event_id stored once, and exactly the new ones reported, on both stores."""

from __future__ import annotations

import sqlite3
import threading
import time

import orjson
import pytest
from sqlalchemy import event, func, select

from agentwatch.events.model import Event
from agentwatch.store.engine import make_engine
from agentwatch.store.events import COLUMNS, _values, commit_batch
from agentwatch.store.migrate import migrate
from agentwatch.store.schema import events
from tests.support.services import drop_postgres_database, fresh_postgres_database


def ev(event_id: str, note: str = "") -> Event:
    body = {"event_id": event_id, "event_type": "agent.message", "ts": "2026-04-03T10:00:00Z", "data": {"n": note}}
    return Event(body=body, event_id=event_id, event_type="agent.message", ts=1775210400.0, received_at=1775210401.0)


def stored_notes(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.event_id: orjson.loads(r.body)["data"]["n"] for r in conn.execute(select(events))}


def test_only_new_events_are_stored_and_reported_in_order(engine):
    assert [e.event_id for e in commit_batch(engine, [ev("a", "first"), ev("b", "first")])] == ["a", "b"]
    batch = [ev("c"), ev("a", "again"), ev("d"), ev("c", "repeat in batch"), ev("b", "again"), ev("e")]
    assert [e.event_id for e in commit_batch(engine, batch)] == ["c", "d", "e"]
    assert commit_batch(engine, [ev("a", "third"), ev("d", "again")]) == []
    notes = stored_notes(engine)
    assert notes == {"a": "first", "b": "first", "c": "", "d": "", "e": ""}  # the first copy is what stays


def test_a_batch_of_new_events_after_many_stored(engine):
    commit_batch(engine, [ev(f"old-{i}") for i in range(1500)])
    batch = [ev(f"old-{i}") if i % 3 == 0 else ev(f"new-{i}") for i in range(1500)]
    fresh = commit_batch(engine, batch)
    assert [e.event_id for e in fresh] == [f"new-{i}" for i in range(1500) if i % 3]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 1500 + 1000


@pytest.fixture
def pg_url():
    url, name = fresh_postgres_database()
    yield url
    drop_postgres_database(name)


@pytest.mark.postgres
def test_postgresql_concurrent_writer_of_the_same_id(pg_url):
    """Another writer stores an id between our lookup and our bulk copy: we report only ours."""
    engine = make_engine(pg_url)
    migrate(engine)
    other = engine.connect()
    try:
        other_tx = other.begin()
        theirs = ev("shared", "other writer")
        other.execute(events.insert(), [dict(zip(COLUMNS, _values(theirs), strict=True))])
        result: list[list[Event]] = []
        ours = threading.Thread(target=lambda: result.append(commit_batch(engine, [ev("mine"), ev("shared", "us")])))
        ours.start()
        time.sleep(0.5)  # our lookup saw nothing; our copy now waits on the other writer's row
        other_tx.commit()
        ours.join(timeout=30)
        assert [e.event_id for e in result[0]] == ["mine"]
        assert stored_notes(engine) == {"shared": "other writer", "mine": ""}
    finally:
        other.close()
        engine.dispose()


def test_sqlite_batches_larger_than_one_statement(tmp_path):
    """Several multi-row INSERTs in one commit, some rows repeats: the new ones are still exact."""
    eng = make_engine(f"sqlite:///{tmp_path / 'chunks.db'}")

    @event.listens_for(eng, "connect")
    def _small_limit(dbapi_conn, _record):  # 2 rows of 19 values per statement
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)

    migrate(eng)
    try:
        commit_batch(eng, [ev(f"e{i}") for i in range(0, 30, 3)])
        fresh = commit_batch(eng, [ev(f"e{i}") for i in range(30)])
        assert [e.event_id for e in fresh] == [f"e{i}" for i in range(30) if i % 3]
        assert len(stored_notes(eng)) == 30
    finally:
        eng.dispose()


def test_a_bounded_lock_wait_gives_up_having_written_nothing_and_restores_the_wait(tmp_path):
    """``lock_wait_ms``: past it, SQLite's "database is locked" reaches the caller with nothing
    written, and the pooled connection goes back to the store's usual wait."""
    from agentwatch.store.engine import SQLITE_BUSY_MS, is_locked

    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            commit_batch(engine, [ev("a")], lock_wait_ms=50)
        waited = time.monotonic() - started
        assert is_locked(caught.value)
        assert 0.04 <= waited < 5  # it waited about as long as asked, not the store's 30 s
        holder.execute("COMMIT")
        assert stored_notes(engine) == {}
        with engine.connect() as conn:  # the pool's last-used connection: the one that gave up
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == SQLITE_BUSY_MS
        assert [e.event_id for e in commit_batch(engine, [ev("a")], lock_wait_ms=50)] == ["a"]
    finally:
        holder.close()
        engine.dispose()


def test_is_locked_names_only_the_lock_error(tmp_path):
    from sqlalchemy.exc import OperationalError

    from agentwatch.store.engine import is_locked

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as caught, engine.connect() as conn:
            conn.exec_driver_sql("SELECT * FROM no_such_table")
        assert not is_locked(caught.value)
        assert not is_locked(ValueError("database is locked"))
    finally:
        engine.dispose()


def test_absent_values_are_stored_as_null(engine):
    """Every column an event leaves empty is NULL in both stores (on SQLite, None goes through the
    sqlite3 module's adapter registered for it)."""
    e = ev("nulls")
    commit_batch(engine, [e])
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.event_id == "nulls")).one()
    for column in ("session_id", "parent_session_id", "sequence", "agent", "host", "pid", "ppid", "raw"):
        assert getattr(row, column) is None, column
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            nulls = conn.exec_driver_sql(
                "SELECT count(*) FROM events WHERE event_id = 'nulls' AND session_id IS NULL AND raw IS NULL"
            ).scalar_one()
        assert nulls == 1


def proc_ev(event_id: str, pid: int) -> Event:
    body = {
        "event_id": event_id,
        "event_type": "agent.message",
        "ts": "2026-04-03T10:00:00Z",
        "host": {"hostname": "h1"},
        "process": {"pid": pid, "name": f"p{pid}"},
        "data": {},
    }
    return Event(body=body, event_id=event_id, event_type="agent.message", ts=1775210400.0, received_at=1775210401.0)


def test_derived_rows_count_only_the_events_stored_for_the_first_time(engine):
    """The process rows and counters are worked out before the commit takes the write lock, for
    every event offered: a resent event must still add nothing to them."""
    from agentwatch.store import counters
    from agentwatch.store.schema import processes

    commit_batch(engine, [proc_ev("a", 1), proc_ev("b", 1), proc_ev("c", 2)])
    # "a" and "c" were stored before; "a" is repeated within the batch too
    fresh = commit_batch(engine, [proc_ev("a", 1), proc_ev("d", 1), proc_ev("c", 2), proc_ev("a", 1), proc_ev("e", 3)])
    assert [e.event_id for e in fresh] == ["d", "e"]
    with engine.connect() as conn:
        counts = {r.pid: r.event_count for r in conn.execute(select(processes.c.pid, processes.c.event_count))}
    assert counts == {1: 3, 2: 1, 3: 1}
    totals = counters.read(engine, exact=[("event_type", "agent.message")])
    assert totals.exact[("event_type", "agent.message")] == 5
