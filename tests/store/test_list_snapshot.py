"""A list's page and its ``total`` come from one snapshot of the store.

``GET /sessions``, ``GET /api/events`` and ``GET /api/v1/events`` read a page and the count of
every match in two statements. Read apart, a row committed between the two is counted but not
listed, so ``total`` (and ``next_offset``) disagree with the page.

The race is made to happen every time: a hook on the database driver (SQLite's statement
trace, a psycopg cursor class) commits one more row from another connection just before the
count statement runs. Nothing of agentwatch is replaced; the hook only picks the moment of a
concurrent write. A second test lists while another thread keeps inserting, many times.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, insert

from agentwatch.events.model import Event
from agentwatch.sessions import queries as session_queries
from agentwatch.sessions.schema import aop_sessions
from agentwatch.store import events as event_store
from agentwatch.store.engine import make_engine
from tests.support.server import RunningServer, open_settings, run_server

T0 = 1_775_000_000.0


def session_row(n: int) -> dict[str, Any]:
    at = T0 + n
    return {
        "id": f"sess-{n:05d}",
        "agent_id": "agent-1",
        "status": "running",
        "started_at": at,
        "last_event_at": at,
        "last_seen_at": at,
        "event_count": 1,
        "event_steps": 0,
        "reported_steps": 0,
        "reported_tokens": 0.0,
        "summed_tokens": 0.0,
        "max_sequence": 0,
    }


def stored_event(n: int) -> Event:
    event_id = f"ev-{n:05d}"
    at = T0 + n
    body = {"oisp_version": "0.1", "event_id": event_id, "event_type": "agent.snapshot_test", "ts": at}
    return Event(body=body, event_id=event_id, event_type="agent.snapshot_test", ts=at, received_at=at)


def add_session(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(aop_sessions).values(**session_row(n)))


def add_event(engine: Engine, n: int) -> None:
    assert len(event_store.commit_batch(engine, [stored_event(n)])) == 1


class WriteBeforeCount:
    """Once armed, commits one row through ``write`` (another connection) just before the next
    ``count(*)`` statement that follows a page (a ``LIMIT`` query) on the same connection of
    ``engine``, that is between a list's page and its total. (A count by a background part of
    the server on another connection, which a loaded machine can schedule first, is not it.)"""

    def __init__(self, engine: Engine, write: Callable[[], None]) -> None:
        self.engine = engine
        self.write = write
        self.armed = False
        self.fired = 0
        event.listen(engine, "checkout", self._hook)
        event.listen(engine, "checkin", self._unhook)

    def remove(self) -> None:
        event.remove(self.engine, "checkout", self._hook)
        event.remove(self.engine, "checkin", self._unhook)

    def _watcher(self) -> Callable[[str], None]:
        """The statement hook of one connection checkout."""
        paged = False

        def before(sql: str) -> None:
            nonlocal paged
            text = sql.lower()
            if not self.armed:
                return
            if "count(*)" in text and paged:
                self.armed = False
                self.write()
                self.fired += 1
            elif " limit " in text:
                paged = True

        return before

    def _hook(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        before = self._watcher()
        if isinstance(dbapi_conn, psycopg.Connection):

            class Hooked(psycopg.Cursor):  # type: ignore[type-arg]
                def execute(self, query: Any, *args: Any, **kw: Any) -> Any:
                    before(str(query))
                    return super().execute(query, *args, **kw)

            dbapi_conn.cursor_factory = Hooked
        else:  # sqlite3: called as each statement starts, before it reads anything
            dbapi_conn.set_trace_callback(before)

    def _unhook(self, dbapi_conn: Any, _record: Any) -> None:
        if isinstance(dbapi_conn, psycopg.Connection):
            dbapi_conn.cursor_factory = psycopg.Cursor
        else:
            dbapi_conn.set_trace_callback(None)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[RunningServer, Engine]]:
    """A real server, and a second engine on its store (the concurrent writer's)."""
    with run_server(open_settings(tmp_path, database_url)) as srv:
        writer = make_engine(database_url)
        try:
            yield srv, writer
        finally:
            writer.dispose()


def test_sessions_page_and_total_agree_when_a_session_lands_between(served):
    srv, writer = served
    for n in range(3):
        add_session(writer, n)
    hook = WriteBeforeCount(srv.aw.engine, lambda: add_session(writer, 3))
    try:
        hook.armed = True
        with srv.client() as c:
            r = c.get("/sessions", params={"limit": 3})
    finally:
        hook.remove()
    assert hook.fired == 1, "the concurrent write did not happen between page and count"
    assert r.status_code == 200, r.text
    body = r.json()
    # the page is of the three sessions before the write: its total says three, and no page follows
    assert [s["id"] for s in body["sessions"]] == ["sess-00002", "sess-00001", "sess-00000"]
    assert body["total"] == 3
    assert body["next_offset"] is None
    with srv.client() as c:  # the session written meanwhile is listed by the next request
        after = c.get("/sessions", params={"limit": 3}).json()
    assert after["total"] == 4 and after["next_offset"] == 3


def test_oisp_events_page_and_total_agree_when_an_event_lands_between(served):
    srv, writer = served
    for n in range(3):
        add_event(writer, n)
    hook = WriteBeforeCount(srv.aw.engine, lambda: add_event(writer, 3))
    try:
        hook.armed = True
        with srv.client() as c:
            r = c.get("/api/events", params={"limit": 10})
    finally:
        hook.remove()
    assert hook.fired == 1, "the concurrent write did not happen between page and count"
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["event_id"] for e in body["events"]] == ["ev-00002", "ev-00001", "ev-00000"]
    assert body["total"] == 3


def test_v1_events_page_and_total_agree_when_an_event_lands_between(served):
    srv, writer = served
    for n in range(3):
        add_event(writer, n)
    hook = WriteBeforeCount(srv.aw.engine, lambda: add_event(writer, 3))
    try:
        hook.armed = True
        with srv.client() as c:
            r = c.get("/api/v1/events", params={"limit": 10})
    finally:
        hook.remove()
    assert hook.fired == 1, "the concurrent write did not happen between page and count"
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["id"] for e in body["events"]] == ["ev-00002", "ev-00001", "ev-00000"]
    assert body["meta"]["total"] == 3


LISTS = {
    "sessions": (
        add_session,
        lambda engine: session_queries.list_sessions(engine, session_queries.SessionQuery(limit=1000))[:2],
    ),
    "events": (add_event, lambda engine: event_store.query(engine, event_store.EventQuery(limit=1000))),
    "event_rows": (add_event, lambda engine: event_store.query_rows(engine, event_store.EventQuery(limit=1000))),
}


@pytest.mark.parametrize("kind", sorted(LISTS))
def test_page_and_total_agree_while_another_thread_inserts(kind, engine, database_url):
    """No hook: a writer thread commits rows one by one while the list is read again and again.
    Every answer lists exactly as many rows as its total says (the page holds all of them)."""
    add, read = LISTS[kind]
    writer = make_engine(database_url)
    stop = threading.Event()
    written = [0]

    def keep_writing() -> None:
        while not stop.is_set() and written[0] < 900:
            add(writer, written[0])
            written[0] += 1

    thread = threading.Thread(target=keep_writing, daemon=True)
    thread.start()
    mismatches = []
    reads = 0
    try:
        deadline = time.monotonic() + 20
        while thread.is_alive() and reads < 400 and time.monotonic() < deadline:
            rows, total = read(engine)
            reads += 1
            if len(rows) != total:
                mismatches.append((len(rows), total))
    finally:
        stop.set()
        thread.join(timeout=30)
        writer.dispose()
    assert written[0] > 10 and reads > 10, (written[0], reads)
    assert not mismatches, f"{len(mismatches)} of {reads} reads disagreed, (listed, total): {mismatches[:3]}"
