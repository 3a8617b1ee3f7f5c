"""The pipeline's commits on SQLite take turns through a file lock beside the database, so a
waiting commit starts the moment the one before it ends (SQLite's busy handler would sleep on)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select

from agentwatch.events.model import Event
from agentwatch.store.engine import make_engine
from agentwatch.store.events import commit_batch
from agentwatch.store.migrate import migrate
from agentwatch.store.schema import events
from agentwatch.store.writer_turns import writer_turn

NOW = 1_780_000_000.0


def ev(event_id: str) -> Event:
    body = {"event_id": event_id, "event_type": "agent.message", "data": {}}
    return Event(body=body, event_id=event_id, event_type="agent.message", ts=NOW, received_at=NOW)


def test_a_turn_held_keeps_the_next_taker_waiting_until_it_ends(tmp_path: Path):
    database = str(tmp_path / "store.db")
    taken = threading.Event()

    def take() -> None:
        with writer_turn(database):
            taken.set()

    with writer_turn(database):
        thread = threading.Thread(target=take)
        thread.start()
        assert not taken.wait(0.3)  # the holder has the turn: the other waits
    assert taken.wait(5)  # and gets it as soon as the holder lets go
    thread.join(5)


def test_threads_of_one_process_take_turns_too(tmp_path: Path):
    database = str(tmp_path / "store.db")
    inside, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(50):
            with writer_turn(database):
                with lock:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.0005)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most == 1


def test_a_pipeline_commit_waits_for_the_turn_and_then_stores_its_events(tmp_path: Path):
    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        migrate(engine)
        done = threading.Event()
        stored: list[Event] = []

        def commit() -> None:
            stored.extend(commit_batch(engine, [ev("a"), ev("b")]))
            done.set()

        with writer_turn(str(db)):  # as another process holds it
            assert (tmp_path / "store.db-writers").exists()
            thread = threading.Thread(target=commit)
            thread.start()
            assert not done.wait(0.3)  # the commit waits while another process has the turn
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        assert done.wait(10)
        thread.join(5)
        assert [e.event_id for e in stored] == ["a", "b"]
    finally:
        engine.dispose()


def test_the_trace_indexer_writes_in_its_turn(tmp_path: Path):
    """The trace indexer takes the writer turn too, so a pipeline commit that finds it writing
    sleeps until it is done instead of in SQLite's busy handler."""
    from agentwatch.store.trace_index import TraceIndexer

    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        migrate(engine)
        e = ev("traced")
        e.trace_id = "t1"
        commit_batch(engine, [e])
        indexed: list[int] = []
        indexer = TraceIndexer(str(db))
        with writer_turn(str(db)):  # as a pipeline commit holds it
            thread = threading.Thread(target=lambda: indexed.append(indexer.run_once()))
            thread.start()
            thread.join(0.3)
            assert indexed == []  # the indexer waits for its turn
        thread.join(10)
        assert indexed == [1]
    finally:
        engine.dispose()


def test_writers_beside_the_pipeline_take_the_turn_of_a_sqlite_file(tmp_path: Path):
    """Alerts stored apart from their events wait for the turn as a commit does; a store that is
    not a SQLite file has no turn to take."""
    from agentwatch.alerts.recorder import store_findings
    from agentwatch.pipeline.pipeline import Finding
    from agentwatch.store.writer_turns import turn_of

    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    memory = create_engine("sqlite://")
    try:
        migrate(engine)
        finding = Finding(detector="test", rule_id="r1", title="t", severity=5, events=[ev("x")])
        stored: list[object] = []
        with writer_turn(str(db)):  # as a pipeline commit holds it
            thread = threading.Thread(target=lambda: stored.extend(store_findings(engine, [finding], 60.0)))
            thread.start()
            thread.join(0.3)
            assert stored == []  # the alert waits for its turn
        thread.join(10)
        assert len(stored) == 1
        with turn_of(memory), turn_of(memory):  # nothing to wait for: no file, no other process
            pass
    finally:
        engine.dispose()
        memory.dispose()


def test_a_retention_page_is_deleted_in_the_writer_turn(tmp_path: Path):
    from agentwatch.store.retention import purge_events

    db = tmp_path / "store.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        migrate(engine)
        commit_batch(engine, [ev("old-1"), ev("old-2")])  # stored at NOW
        removed: list[int] = []
        with writer_turn(str(db)):  # as a pipeline commit holds it
            thread = threading.Thread(target=lambda: removed.append(purge_events(engine, NOW + 1)))
            thread.start()
            thread.join(0.3)
            assert removed == []  # the page's delete waits for its turn
        thread.join(10)
        assert removed == [2]
    finally:
        engine.dispose()
