"""The events aggregate: batch commit (idempotent on event_id) and queries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, select

from agentwatch.events.model import MAX_QUANTITY, Event, int64
from agentwatch.store import counters as counters_store
from agentwatch.store import processes as process_store
from agentwatch.store import trace_index
from agentwatch.store.engine import SQLITE_BUSY_MS, wait_for_lock
from agentwatch.store.prepared import sqlite_chunk_rows
from agentwatch.store.schema import events
from agentwatch.store.snapshot import snapshot
from agentwatch.store.writer_turns import turn_of

CHUNK = 500  # ids per IN (...) lookup
# The indexed copies of free text the envelope does not bound are cut to their columns' width
# (from the table definition): PostgreSQL refuses a longer value, and with it the whole commit.
HOST_WIDTH = events.c.host.type.length
NAME_WIDTH = events.c.process_name.type.length


def _values(e: Event) -> tuple[Any, ...]:
    """The row of one event, in the order of ``COLUMNS`` (checked below at import)."""
    proc = e.process
    hostname = e.hostname
    ppid, name = proc.get("ppid"), proc.get("name")
    ents = e.entities
    return (
        e.event_id,
        e.event_type,
        e.ts,
        e.received_at,
        e.source_format,
        e.session_id,
        e.parent_session_id,
        int64(e.sequence),
        e.agent,
        e.severity,
        None if hostname is None else hostname[:HOST_WIDTH],
        e.pid,
        int64(ppid),
        name[:NAME_WIDTH] if isinstance(name, str) else None,
        e.trace_id,
        " ".join([x["id"] for x in ents]),
        orjson.dumps(ents).decode(),
        e.to_json().decode(),
        e.raw,
    )


ROW_COLUMNS = (
    "event_id",
    "event_type",
    "ts",
    "received_at",
    "source_format",
    "session_id",
    "parent_session_id",
    "sequence",
    "agent",
    "severity",
    "host",
    "pid",
    "ppid",
    "process_name",
    "trace_id",
    "entity_ids",
    "entities",
    "body",
    "raw",
)


def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        found.update(conn.execute(select(events.c.event_id).where(events.c.event_id.in_(chunk))).scalars())
    return found


COLUMNS = [c.name for c in events.columns if c.name != "seq"]
if tuple(COLUMNS) != ROW_COLUMNS:  # a schema change must update _values too
    raise RuntimeError(f"events columns {COLUMNS} do not match the row layout {ROW_COLUMNS}")
# Column names come from the table definition, never from input. Only a repeated event_id is
# skipped; any other constraint a row breaks fails the batch.
_ROW = f"({','.join('?' for _ in COLUMNS)})"


@lru_cache(maxsize=64)
def sqlite_insert(rows: int) -> str:
    """One INSERT of ``rows`` rows: a single statement, not ``executemany`` (see
    ``store.prepared.sqlite_chunk_rows``)."""
    return (
        f"INSERT INTO events ({','.join(COLUMNS)}) VALUES {','.join([_ROW] * rows)}"  # noqa: S608
        " ON CONFLICT (event_id) DO NOTHING"
    )


SQLITE_WRITTEN = "SELECT event_id FROM events WHERE seq BETWEEN ? AND ?"
PG_COPY = f"COPY events ({','.join(COLUMNS)}) FROM STDIN"


def _first_of_each(batch: Sequence[Event]) -> list[Event]:
    """The batch without repeats of an event_id (the first one stays), in order."""
    by_id: dict[str, Event] = {}
    for e in batch:
        by_id.setdefault(e.event_id, e)
    return list(by_id.values())


def _insert_new_sqlite(conn: Connection, unique: list[Event], rows: list[tuple[Any, ...]]) -> list[Event]:
    """Insert and return the events not stored before, without looking them up first.

    The transaction holds SQLite's write lock from this INSERT on, so the rows it writes get
    consecutive rowids ending at ``last_insert_rowid()``: when fewer rows were written than
    offered, those rowids say which.
    """
    raw = conn.connection.driver_connection
    before = raw.total_changes
    per = sqlite_chunk_rows(raw, len(COLUMNS))
    for i in range(0, len(unique), per):
        params: list[Any] = []
        for row in rows[i : i + per]:
            params += row
        conn.exec_driver_sql(sqlite_insert(min(per, len(unique) - i)), tuple(params))
    written = raw.total_changes - before
    if written == len(unique):
        return unique
    if written == 0:
        return []
    last = raw.execute("SELECT last_insert_rowid()").fetchone()[0]
    stored = {r[0] for r in raw.execute(SQLITE_WRITTEN, (last - written + 1, last))}
    return [e for e in unique if e.event_id in stored]


PG_COPY_FROM = 200  # events: smaller batches go in with one INSERT .. RETURNING round trip


PG_INSERT_RETURNING = (
    f"INSERT INTO events ({','.join(COLUMNS)}) VALUES ({','.join(['%s'] * len(COLUMNS))})"  # noqa: S608
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


def _insert_returning(conn: Connection, fresh: list[Event], tuples: list[tuple[Any, ...]]) -> list[Event]:
    """INSERT .. ON CONFLICT (event_id) DO NOTHING RETURNING event_id: the rows stored, in order.

    One statement text for any number of rows, run by the driver's pipelined ``executemany``
    (one round trip): the driver parses the text once, where a multi-row INSERT of a new
    length each time is parsed again, in Python, for every batch."""
    stored: set[str] = set()
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.executemany(PG_INSERT_RETURNING, tuples, returning=True)
        while True:
            for (event_id,) in cur.fetchall():
                stored.add(event_id)
            if not cur.nextset():
                break
    finally:
        cur.close()
    return [e for e in fresh if e.event_id in stored]


def _insert_new_postgresql(conn: Connection, unique: list[Event], rows: list[tuple[Any, ...]]) -> list[Event]:
    """A small batch: one INSERT that skips stored ids and says which rows it wrote. A large
    one: look the ids up, then COPY the new rows in (far cheaper per row than an INSERT).

    Should a concurrent writer have stored one of these ids meanwhile, the COPY fails on the
    unique index and the rows go in through INSERT .. ON CONFLICT DO NOTHING inside a savepoint.
    """
    import psycopg

    # Rows go in in event_id order (the answer keeps the batch's): two commits holding some of
    # the same ids then take those ids' unique-index entries in one order, never waiting for
    # each other in a cycle (PostgreSQL aborts one of them as a deadlock).
    if len(unique) < PG_COPY_FROM:
        return _insert_returning(conn, unique, sorted(rows))
    seen = existing_ids(conn, [e.event_id for e in unique])
    fresh = [e for e in unique if e.event_id not in seen]
    if not fresh:
        return []
    tuples = sorted(row for e, row in zip(unique, rows, strict=True) if e.event_id not in seen)
    try:
        with conn.begin_nested():
            cur = conn.connection.driver_connection.cursor()
            with cur.copy(PG_COPY) as copy:
                for t in tuples:
                    copy.write_row(t)
        return fresh
    except psycopg.errors.UniqueViolation:
        pass
    return _insert_returning(conn, fresh, tuples)


def delete_where(conn: Connection, where: Any) -> int:
    """Delete the events matching ``where`` in ``conn``'s transaction, with their trace-index
    entries (SQLite, ``store.trace_index``); returns how many went."""
    trace_index.forget(conn, where)
    gone = conn.execute(delete(events).where(where)).rowcount or 0
    trace_index.settle(conn)
    return gone


# A step writes in the commit's transaction and may return what to do once it has committed.
CommitStep = Callable[[Connection, list[Event]], Callable[[], None] | None]


def commit_batch(
    engine: Engine,
    batch: Sequence[Event],
    steps: Sequence[CommitStep] = (),
    also: Callable[[Connection], object] | None = None,
    lock_wait_ms: int | None = None,
) -> list[Event]:
    """Store the events not stored before; returns exactly those, in order.

    Each of ``steps`` runs inside the same transaction with those events, so what it writes
    (derived rows) is committed together with them or not at all, and never for a resent event;
    what a step returns is called after the commit succeeded (to update an in-memory cache).
    ``also`` writes in that transaction too, whether or not any event was new (the audit
    rows of the requests that brought the batch).

    ``lock_wait_ms`` (SQLite) bounds the wait for another writer's lock; past it the commit
    raises "database is locked" (``store.engine.is_locked``) having written nothing.
    """
    after: list[Callable[[], None]] = []
    sqlite = engine.dialect.name == "sqlite"
    insert_new = _insert_new_sqlite if sqlite else _insert_new_postgresql
    bounded = sqlite and lock_wait_ms is not None
    # What the rows will hold is worked out before the write lock is waited for: with several
    # processes on one SQLite file, every microsecond spent holding it is one the others wait.
    # It is worked out for every event offered; should some turn out stored already, the
    # derived rows are worked out again for the new ones alone.
    unique = _first_of_each(batch)
    rows = [_values(e) for e in unique]
    counts = tally(unique)
    process_rows = process_store.rows_of(unique)
    # a bounded commit runs on the event loop: it must not sleep on the turn, only on SQLite's lock
    with nullcontext() if bounded else turn_of(engine), engine.begin() as conn:
        if bounded:
            wait_for_lock(conn, lock_wait_ms or 0)
        try:
            fresh = insert_new(conn, unique, rows) if unique else []
            if fresh:
                if len(fresh) != len(unique):
                    counts, process_rows = tally(fresh), process_store.rows_of(fresh)
                counters_store.add(conn, counts)
                process_store.write(conn, process_rows)
                for step in steps:
                    done = step(conn, fresh)
                    if done is not None:
                        after.append(done)
            if also is not None:
                also(conn)
        finally:
            if bounded:  # the write lock, if taken, is held until the commit: no wait is left
                wait_for_lock(conn, SQLITE_BUSY_MS)
    for done in after:
        done()
    return fresh


def _quantity(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if 0 <= v <= MAX_QUANTITY else None  # NaN fails both comparisons


def tally(batch: Sequence[Event]) -> Counter[tuple[str, str]]:
    types = Counter([e.event_type for e in batch])
    c: Counter[tuple[str, str]] = Counter({("event_type", t): n for t, n in types.items()})
    if "ai.request" not in types and "ai.response" not in types:
        return c
    for e in batch:
        if e.event_type == "ai.request":
            data = e.data
            provider = data.get("provider")
            if isinstance(provider, dict) and isinstance(provider.get("name"), str):
                c[("ai_provider", provider["name"][:256])] += 1
            model = data.get("model")
            if isinstance(model, dict) and isinstance(model.get("id"), str):
                c[("ai_model", model["id"][:256])] += 1
        elif e.event_type == "ai.response":
            usage = e.data.get("usage")
            if isinstance(usage, dict):
                parts = {name: _quantity(usage.get(key)) for name, key in PARTS}
                for name, v in parts.items():
                    if v is not None:
                        c[("ai_tokens", name)] += v
                total = _quantity(usage.get("total_tokens"))
                if total is None:
                    total = sum(v for v in parts.values() if v is not None)
                c[("ai_tokens", "total")] += total
                cost = _quantity(usage.get("total_cost_usd"))
                if cost is not None:
                    c[("ai_cost", "usd")] += cost
    return c


PARTS = (("prompt", "prompt_tokens"), ("completion", "completion_tokens"))


@dataclass
class EventQuery:
    limit: int = 100
    offset: int = 0
    event_type: str | None = None
    process: str | None = None
    since: float | None = None
    until: float | None = None
    trace_id: str | None = None
    session_id: str | None = None
    source_format: str | None = None
    min_severity: int | None = None
    entity_id: str | None = None
    text: str | None = None  # a substring of the event (see ``_text_condition``)
    newest_first: bool = True


ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ASCII_LOWER = ASCII_UPPER.lower()
ASCII_FOLD = str.maketrans(ASCII_UPPER, ASCII_LOWER)


def stored_form(text: str) -> str:
    """``text`` as it appears inside a stored body (orjson, the store's serialiser): a
    backslash, a quote or a control character (NUL too) is stored escaped, so a search looks
    for the escape; ``C:\\Users`` then finds the path, and ``"`` does not find every event."""
    return orjson.dumps(text)[1:-1].decode()


def _text_condition(dialect: str, text: str) -> Any:
    """A substring of the event's JSON, A-Z matched without regard to case and every other
    character exactly, the same on both stores. SQLite's LIKE folds ASCII letters only;
    PostgreSQL's is case-sensitive (and its ILIKE would fold every alphabet), so there the
    body's ASCII letters are folded before the match."""
    body: Any = events.c.body
    if dialect != "sqlite":
        body = func.translate(body, ASCII_UPPER, ASCII_LOWER)
    return body.contains(stored_form(text).translate(ASCII_FOLD), autoescape=True)


def _where(q: EventQuery, dialect: str) -> list[Any]:
    cond: list[Any] = []
    if q.event_type:
        if q.event_type.endswith(".*"):
            cond.append(events.c.event_type.startswith(q.event_type[:-1], autoescape=True))
        else:
            cond.append(events.c.event_type == q.event_type)
    if q.process:
        cond.append(events.c.process_name == q.process)
    if q.since is not None:
        cond.append(events.c.ts >= q.since)
    if q.until is not None:
        cond.append(events.c.ts <= q.until)
    if q.trace_id:
        cond.append(trace_index.of_trace(dialect, q.trace_id))
    if q.session_id:
        cond.append(events.c.session_id == q.session_id)
    if q.source_format:
        cond.append(events.c.source_format == q.source_format)
    if q.min_severity is not None:
        cond.append(events.c.severity >= q.min_severity)
    if q.entity_id:
        cond.append(events.c.entity_ids.contains(q.entity_id, autoescape=True))
    if q.text:
        cond.append(_text_condition(dialect, q.text))
    return cond


def query(engine: Engine | Connection, q: EventQuery) -> tuple[list[dict[str, Any]], int]:
    """The bodies of a page of the events matching ``q`` and the count of all of them, both
    read from one snapshot of the store (``store.snapshot``)."""
    conds = _where(q, engine.dialect.name)
    cond = and_(*conds) if conds else None
    stmt = select(events.c.body, events.c.seq)
    count = select(func.count()).select_from(events)
    if cond is not None:
        stmt = stmt.where(cond)
        count = count.where(cond)
    order = (events.c.ts.desc(), events.c.seq.desc()) if q.newest_first else (events.c.ts, events.c.seq)
    stmt = stmt.order_by(*order).limit(q.limit).offset(q.offset)
    with snapshot(engine) as conn:
        rows = [orjson.loads(r.body) for r in conn.execute(stmt)]
        total = conn.execute(count).scalar_one()
    return rows, total


def query_rows(engine: Engine | Connection, q: EventQuery, with_total: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Like :func:`query` but with the derived columns beside the body. Given a connection,
    reads in its transaction (several queries of one request sharing a snapshot). Without
    ``with_total`` the selection is not counted (the total answered is -1): a reader of later
    pages of one snapshot knows it already."""
    conds = _where(q, engine.dialect.name)
    stmt = select(events)
    count = select(func.count()).select_from(events)
    if conds:
        stmt = stmt.where(and_(*conds))
        count = count.where(and_(*conds))
    order = (events.c.ts.desc(), events.c.seq.desc()) if q.newest_first else (events.c.ts, events.c.seq)
    stmt = stmt.order_by(*order).limit(q.limit).offset(q.offset)
    with snapshot(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        total = conn.execute(count).scalar_one() if with_total else -1
    return rows, total


def get(engine: Engine, event_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        body = conn.execute(select(events.c.body).where(events.c.event_id == event_id)).scalar_one_or_none()
    return orjson.loads(body) if body is not None else None


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()
