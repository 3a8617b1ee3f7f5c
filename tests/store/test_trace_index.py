"""Finding a trace's events: on SQLite through ``trace_index``, filled behind the commits; on
PostgreSQL through the index on ``events.trace_id``. Either way an event is found by its trace
the moment it is committed, and deleted events are never found again. On SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select

from agentwatch.events.model import Event
from agentwatch.sessions.queries import delete_sessions
from agentwatch.store import kv, retention
from agentwatch.store.engine import make_engine, sqlite_file
from agentwatch.store.events import EventQuery, commit_batch
from agentwatch.store.events import query as query_events
from agentwatch.store.migrate import alembic_config, migrate
from agentwatch.store.schema import events, trace_index
from agentwatch.store.trace_index import THROUGH, TraceIndexer, catch_up
from agentwatch.store.traces import get_trace
from tests.detect.helpers import wait_for
from tests.support.server import open_settings, run_server

NOW = 1_780_000_000.0


def ev(event_id: str, trace: str, received_at: float = NOW, session: str | None = None) -> Event:
    body: dict[str, Any] = {"event_id": event_id, "event_type": "process.exec", "data": {"exe": "/bin/true"}}
    e = Event(body=body, event_id=event_id, event_type="process.exec", ts=NOW, received_at=received_at)
    if session is not None:  # an AOP session's event, as the session delete finds them
        e.source_format, e.session_id = "aop", session
    e.trace_id = trace
    return e


def trace_ids(engine, trace: str) -> list[str]:  # noqa: ANN001
    found = get_trace(engine, trace)
    by_query = [e["event_id"] for e in query_events(engine, EventQuery(trace_id=trace, limit=1000))[0]]
    from_trace = [] if found is None else [e["event_id"] for e in found["events"]]
    assert sorted(by_query) == sorted(from_trace)  # the two routes to a trace agree
    return sorted(from_trace)


def entries(engine) -> list[tuple[str, int]]:  # noqa: ANN001
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(trace_index.c.trace_id, trace_index.c.seq)))


def index_now(engine) -> int:  # noqa: ANN001
    return TraceIndexer(sqlite_file(engine)).run_once()


def test_a_trace_is_found_before_and_after_it_is_indexed(engine):
    commit_batch(engine, [ev("a1", "t-a"), ev("b1", "t-b"), ev("a2", "t-a")])
    assert trace_ids(engine, "t-a") == ["a1", "a2"] and trace_ids(engine, "t-b") == ["b1"]
    if engine.dialect.name != "sqlite":
        assert entries(engine) == [] and kv.get(engine, THROUGH) is None  # PostgreSQL: its own index
        return
    assert entries(engine) == []  # nothing indexed yet: found through the events after `through`
    assert index_now(engine) == 3
    with engine.connect() as conn:
        seqs = {r.event_id: r.seq for r in conn.execute(select(events.c.event_id, events.c.seq))}
    assert entries(engine) == sorted([("t-a", seqs["a1"]), ("t-a", seqs["a2"]), ("t-b", seqs["b1"])])
    assert kv.get(engine, THROUGH) == max(seqs.values())
    commit_batch(engine, [ev("a3", "t-a")])  # after the run: half indexed, half not
    assert trace_ids(engine, "t-a") == ["a1", "a2", "a3"] and trace_ids(engine, "t-b") == ["b1"]
    assert trace_ids(engine, "t-none") == []


def test_deleted_events_leave_the_index_and_their_freed_seqs_count_as_not_indexed(engine):
    commit_batch(engine, [ev("keep", "t-k")])
    commit_batch(engine, [ev("s1", "t-s", session="sess-1"), ev("s2", "t-s", session="sess-1")])
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        index_now(engine)
    assert trace_ids(engine, "t-s") == ["s1", "s2"]
    with engine.connect() as conn:
        top_before = conn.execute(select(func.max(events.c.seq))).scalar_one()
    with engine.begin() as conn:  # the newest events go, with their session
        assert delete_sessions(conn, ["sess-1"])["events"] == 2
    assert trace_ids(engine, "t-s") == []
    commit_batch(engine, [ev("new", "t-n")])
    assert trace_ids(engine, "t-n") == ["new"] and trace_ids(engine, "t-s") == []
    if sqlite:
        with engine.connect() as conn:
            seqs = {r.event_id: r.seq for r in conn.execute(select(events.c.event_id, events.c.seq))}
        assert seqs["new"] <= top_before  # SQLite gave it a seq the index had been through
        assert [t for t, _ in entries(engine)] == ["t-k"] and kv.get(engine, THROUGH) == seqs["keep"]


def test_retention_takes_the_entries_of_the_events_it_deletes(engine):
    commit_batch(engine, [ev(f"o{i}", "t-old", NOW - 90 * 86_400) for i in range(3)])
    commit_batch(engine, [ev("n1", "t-new", NOW)])
    if engine.dialect.name == "sqlite":
        index_now(engine)
    assert retention.purge_events(engine, NOW - 30 * 86_400) == 3
    assert trace_ids(engine, "t-old") == [] and trace_ids(engine, "t-new") == ["n1"]
    if engine.dialect.name == "sqlite":
        assert [t for t, _ in entries(engine)] == ["t-new"]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite alone: PostgreSQL indexes events.trace_id in place and runs no indexer."""
    eng = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(eng)
    yield eng
    eng.dispose()


def test_indexers_running_at_once_index_every_event_once(sqlite_engine):
    engine = sqlite_engine
    path = sqlite_file(engine)
    errors: list[BaseException] = []

    def commit_and_index(part: int) -> None:
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            for i in range(20):
                commit_batch(engine, [ev(f"p{part}-{i}-{j}", f"t{j % 7}") for j in range(25)])
                catch_up(conn, rows=40)  # small runs: several to catch up with each commit
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=commit_and_index, args=(p,)) for p in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    index_now(engine)
    with engine.connect() as conn:
        rows = sorted(tuple(r) for r in conn.execute(select(events.c.trace_id, events.c.seq)))
    assert len(rows) == 3 * 20 * 25 and entries(engine) == rows
    assert sum(len(trace_ids(engine, f"t{k}")) for k in range(7)) == len(rows)


@pytest.mark.blank_database
def test_the_migration_moves_a_sqlite_store_to_the_trace_index(database_url):
    """A store written before revision 0005: SQLite's index on events.trace_id goes and its
    entries move into trace_index; PostgreSQL keeps its index."""
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0004_alerts_assignee")
        commit_batch(engine, [ev("m1", "t-m"), ev("m2", "t-m"), ev("x1", "t-x")])
        migrate(engine)
        indexes = {i["name"] for i in inspect(engine).get_indexes("events")}
        if engine.dialect.name == "sqlite":
            assert "ix_events_trace" not in indexes
            assert [t for t, _ in entries(engine)] == ["t-m", "t-m", "t-x"]
            with engine.connect() as conn:
                assert kv.get(engine, THROUGH) == conn.execute(select(func.max(events.c.seq))).scalar_one()
        else:
            assert "ix_events_trace" in indexes and entries(engine) == []
        assert trace_ids(engine, "t-m") == ["m1", "m2"] and trace_ids(engine, "t-x") == ["x1"]
    finally:
        engine.dispose()


def test_a_running_server_indexes_what_it_commits(tmp_path: Path, database_url: str):
    trace = uuid.uuid4().hex
    sent = [
        {
            "event_id": f"run-{i}",
            "event_type": "process.exec",
            "trace_context": {"trace_id": trace},
            "data": {"exe": "/bin/true"},
        }
        for i in range(3)
    ]
    with run_server(open_settings(tmp_path, database_url)) as srv, srv.client() as c:
        assert c.post("/api/v1/ingest", json=sent).json()["stored"] == 3
        assert c.get(f"/api/traces/{trace}").json()["event_count"] == 3  # at once, indexed or not
        if database_url.startswith("sqlite"):
            engine = srv.aw.engine
            with engine.connect() as conn:
                top = conn.execute(select(func.max(events.c.seq))).scalar_one()
            wait_for(lambda: (kv.get(engine, THROUGH) or 0) >= top, 10, 0.1)  # within the indexer's second
            assert [t for t, _ in entries(engine)].count(trace) == 3
        else:
            assert srv.aw.trace_indexer is None
        assert c.get(f"/api/traces/{trace}").json()["event_count"] == 3


def test_a_failed_run_is_counted_and_the_next_one_tries_again(tmp_path: Path):
    path = tmp_path / "not-a-store.db"
    path.write_bytes(b"this is not a SQLite database" * 200)
    indexer = TraceIndexer(str(path))
    assert indexer.run_once() == 0 and indexer.failures == 1 and indexer.runs == 0
    path.unlink()
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate(engine)
        commit_batch(engine, [ev("f1", "t-f")])
        assert indexer.run_once() == 1 and indexer.failures == 1 and indexer.runs == 1
    finally:
        engine.dispose()


def test_the_indexer_leaves_checkpoints_to_the_checkpointer(sqlite_engine):
    """The indexer commits while holding the writer turn: a checkpoint run from its own commit
    (SQLite's default, past 1,000 log pages) would keep the pipeline's commits waiting that long.
    Its connection keeps the store's high backstop instead, so the database file does not grow."""
    pad = "x" * 400
    for b in range(4):  # about 2,000 log pages
        batch = [ev(f"e{b}-{i}", f"t{i % 7}") for i in range(4000)]
        for e in batch:
            e.body["data"]["pad"] = pad
        commit_batch(sqlite_engine, batch)
    database = Path(sqlite_file(sqlite_engine))
    assert Path(f"{database}-wal").stat().st_size > 1000 * 4096  # past SQLite's default threshold
    before = database.stat().st_size
    assert index_now(sqlite_engine) == 16_000
    assert database.stat().st_size == before
