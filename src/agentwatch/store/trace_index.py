"""Finding a trace's events on SQLite: an index filled behind the commits.

Trace ids are random, so an index on ``events.trace_id`` put each new event's entry on a page
of its own, and SQLite's write-ahead log writes whole pages: every committed event rewrote a
page of that index (8 of the 13.5 us a row cost to insert 200,000 rows of the ingest
benchmark's shape, and more as the table grows). On
SQLite, ``trace_index`` holds ``(trace_id, seq)`` for the events up to the seq kv
``trace_index.through`` names; a background thread (:class:`TraceIndexer`) adds the events
committed since in one sorted run a second, which touches each page once per run instead of
once per event. A trace's events are those the index names plus those after ``through`` with
that ``trace_id`` (:func:`of_trace`), read in one statement, so an event is found the moment
it is committed. PostgreSQL indexes ``events.trace_id`` in place and uses none of this.

SQLite takes one writer at a time and gives rows their seq as they are written, so every seq
up to the largest committed is committed: a run that indexes up to it leaves nothing behind.
Deleting events deletes their entries (:func:`forget`) and moves ``through`` down to the
largest seq left (:func:`settle`): SQLite may give a deleted top seq to the next event, which
must then count as not indexed. Both happen in ``store.events.delete_where``, the one way
events are deleted.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import structlog
from sqlalchemy import Connection, Integer, cast, func, select, tuple_, union_all

from agentwatch.store.checkpoint import BACKSTOP_PAGES
from agentwatch.store.periodic import Periodic
from agentwatch.store.schema import events, kv, trace_index
from agentwatch.store.writer_turns import writer_turn

log = structlog.get_logger("agentwatch.store")

THROUGH = "trace_index.through"
# Events indexed in one transaction at most: the write lock is held that long (about 1 us an
# event), and the pipeline's commits wait for it.
RUN_ROWS = 10_000
# After a run that left more to do, the indexer waits this long before the next: a commit that
# waited for the lock meanwhile takes its turn first.
BETWEEN_RUNS_S = 0.002


def of_trace(dialect: str, trace_id: str) -> Any:
    """The condition on ``events`` that selects the events of ``trace_id``."""
    if dialect != "sqlite":
        return events.c.trace_id == trace_id
    through = func.coalesce(select(cast(kv.c.value, Integer)).where(kv.c.key == THROUGH).scalar_subquery(), 0)
    seqs = union_all(
        select(trace_index.c.seq).where(trace_index.c.trace_id == trace_id),
        select(events.c.seq).where(events.c.seq > through, events.c.trace_id == trace_id),
    )
    # the trace_id test too: an entry never names another trace's event, even in a race with a delete
    return events.c.seq.in_(seqs) & (events.c.trace_id == trace_id)


def forget(conn: Connection, where: Any) -> None:
    """Before events matching ``where`` are deleted in ``conn``'s transaction: drop their
    entries (SQLite). ``store.events.delete_where`` calls it, and :func:`settle` after."""
    if conn.dialect.name != "sqlite":
        return
    doomed = select(events.c.trace_id, events.c.seq).where(where, events.c.trace_id.is_not(None))
    conn.execute(trace_index.delete().where(tuple_(trace_index.c.trace_id, trace_index.c.seq).in_(doomed)))


def settle(conn: Connection) -> None:
    """After a delete in ``conn``'s transaction: ``through`` no higher than the largest seq left."""
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql(
        "UPDATE kv SET value = (SELECT CAST(coalesce(max(seq), 0) AS TEXT) FROM events)"
        " WHERE key = ? AND CAST(value AS INTEGER) > (SELECT coalesce(max(seq), 0) FROM events)",
        (THROUGH,),
    )


def catch_up(conn: sqlite3.Connection, rows: int = RUN_ROWS) -> int:
    """Index the events committed after ``through`` (at most ``rows``), in one transaction on
    ``conn`` (a driver connection in autocommit mode); returns how many events were looked at."""
    behind = conn.execute(
        "SELECT (SELECT max(seq) FROM events) > coalesce((SELECT CAST(value AS INTEGER) FROM kv WHERE key = ?), 0)",
        (THROUGH,),
    ).fetchone()[0]
    if not behind:  # nothing new (or no events): no write lock taken
        return 0
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: no commit can land in between
    try:
        found = conn.execute("SELECT CAST(value AS INTEGER) FROM kv WHERE key = ?", (THROUGH,)).fetchone()
        start = found[0] if found else 0
        top = conn.execute(
            "SELECT max(seq), count(*) FROM (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
            (start, rows),
        ).fetchone()
        if top[0] is None:
            conn.execute("ROLLBACK")
            return 0
        conn.execute(
            "INSERT OR IGNORE INTO trace_index (trace_id, seq) SELECT trace_id, seq FROM events"
            " WHERE seq > ? AND seq <= ? AND trace_id IS NOT NULL ORDER BY trace_id, seq",
            (start, top[0]),
        )
        conn.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (THROUGH, str(top[0])))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return top[1]


class TraceIndexer(Periodic):
    """Runs :func:`catch_up` every ``interval_s`` on a thread of its own (SQLite only).

    Every process of a server may run one: runs take the write lock in turn, and each indexes
    what the one before left."""

    thread_name = "agentwatch-trace-index"

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self.path = path
        self.runs = 0
        self.indexed = 0
        self.failures = 0

    def tick(self) -> None:
        self.run_once()

    def _run_in_turn(self, conn: sqlite3.Connection) -> int:
        """One catch-up holding the store's writer turn (``store.writer_turns``), as the
        pipeline's commits do: a commit that finds the indexer writing then sleeps until the
        indexer is done, where SQLite's busy handler would have it sleep in steps of up to
        25 ms whatever happens meanwhile."""
        with writer_turn(self.path):
            return catch_up(conn)

    def run_once(self) -> int:
        """One catch-up on a connection of its own; errors are counted and logged, not raised."""
        try:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA synchronous=NORMAL")  # as the store's own connections
                # Checkpoints are the checkpointer's (``store.checkpoint``), as for the store's own
                # connections: one run from this connection's commit would hold the writer turn.
                conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
                done = total = self._run_in_turn(conn)
                while done == RUN_ROWS and not self.stopping:  # far behind: go on soon
                    time.sleep(BETWEEN_RUNS_S)
                    done = self._run_in_turn(conn)
                    total += done
            finally:
                conn.close()
        except Exception as exc:  # the thread outlives a failed run: the next one tries again
            self.failures += 1
            log.warning("store.trace_index_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return 0
        self.runs += 1
        self.indexed += total
        return total
