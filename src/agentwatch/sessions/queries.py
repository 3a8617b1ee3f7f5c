"""Reads and deletes over sessions, their events and their alerts (synchronous engine calls)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.alerts.recorder import delete_dependents
from agentwatch.entities import index as entity_index
from agentwatch.events.model import iso
from agentwatch.sessions.cursor import encode_cursor
from agentwatch.sessions.schema import aop_sessions
from agentwatch.store import counters as counters_store
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.events import delete_where
from agentwatch.store.prepared import Prepared
from agentwatch.store.schema import events
from agentwatch.store.snapshot import snapshot

MAX_SUBTREE = 10_000
CHUNK = 500


@contextmanager
def _conn(bind: Engine | Connection) -> Iterator[Connection]:
    """Use the caller's connection (several reads of one request share it) or open one."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        yield conn


class Bytewise(ColumnElement[str]):
    """A text column compared by code point, as SQLite compares text (BINARY).

    Session ids are chosen by clients, and many sessions can share the sort key (a batch
    gives them all one receive time): the id breaks the tie. PostgreSQL orders text by the
    database's collation, and a linguistic one (en_US, ICU) weighs letters before case and
    punctuation ("sess-a" before "Sess-b"), so the same request listed the same sessions in
    another order than SQLite; ``COLLATE "C"`` there is code point order for UTF-8."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[str]) -> None:
        self.column = column
        self.type = column.type


@compiles(Bytewise)
def _bytewise(element: Bytewise, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(Bytewise, "postgresql")
def _bytewise_postgresql(element: Bytewise, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column.collate("C"), **kw)


@dataclass
class SessionQuery:
    limit: int = 100
    offset: int = 0
    status: str | None = None
    agent: str | None = None
    since: float | None = None
    parent: str | None = None
    after: tuple[float, str] | None = None  # keyset paging: the rows after this (last_seen_at, id)


_LIST_FILTERS = {
    "status": lambda: aop_sessions.c.status == bindparam("status"),
    "agent": lambda: aop_sessions.c.agent_id == bindparam("agent"),
    "since": lambda: aop_sessions.c.last_seen_at >= bindparam("since"),
    "parent": lambda: aop_sessions.c.parent_session_id == bindparam("parent"),
}
_LISTS: dict[tuple[tuple[str, ...], bool], tuple[Prepared, Prepared]] = {}


def _after_position() -> ColumnElement[bool]:
    """Rows after ``(after_seen, after_id)`` in the list's order (newest first, then id
    descending by code point, as the ORDER BY compares them). The first term lets an index on
    ``last_seen_at`` bound the scan."""
    seen, sid = aop_sessions.c.last_seen_at, Bytewise(aop_sessions.c.id)
    return and_(
        seen <= bindparam("after_seen"),
        or_(seen < bindparam("after_seen"), and_(seen == bindparam("after_seen"), sid < bindparam("after_id"))),
    )


def _list_statements(used: tuple[str, ...], keyset: bool) -> tuple[Prepared, Prepared]:
    """The page and count statements for one combination of filters (16), with or
    without a cursor (the count is of every match either way)."""
    found = _LISTS.get((used, keyset))
    if found is None:
        conds = [_LIST_FILTERS[name]() for name in used]
        page = select(aop_sessions)
        count = select(func.count()).select_from(aop_sessions)
        if conds:
            count = count.where(and_(*conds))
        if keyset:
            conds.append(_after_position())
        if conds:
            page = page.where(and_(*conds))
        page = (
            page.order_by(aop_sessions.c.last_seen_at.desc(), Bytewise(aop_sessions.c.id).desc())
            .limit(bindparam("lim"))
            .offset(bindparam("off"))
        )
        found = _LISTS[(used, keyset)] = (Prepared(page), Prepared(count))
    return found


def shown_from(since: float) -> float:
    """The least stored time the API shows (``iso``, whole microseconds) as ``since`` or later.

    A time is stored to the float's precision and shown rounded to the microsecond, so about
    a third of the sessions show a ``last_seen_at`` a fraction of a microsecond above the value
    stored: compared with the stored value, ``since=<that last_seen_at>`` left them out."""
    try:
        target = datetime.fromtimestamp(since, UTC)  # ``since`` at the precision shown
        low, high = since - 2e-6 - 2 * math.ulp(since), since  # shown earlier, and shown as ``since``
        while math.nextafter(low, math.inf) < high:
            middle = low + (high - low) / 2
            if not low < middle < high:  # no float left between them
                break
            if datetime.fromtimestamp(middle, UTC) < target:
                low = middle
            else:
                high = middle
    except (OverflowError, OSError, ValueError):  # outside the years a datetime holds
        return since
    return high


def list_sessions(engine: Engine, q: SessionQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    """Sessions by most recent activity (newest receive time first), the count of all that
    match the filters, and the cursor of the page after this one (None on the last page);
    the page and the count are read from one snapshot of the store."""
    since = shown_from(q.since) if q.since is not None else None
    values = {
        name: value
        for name, value in (("status", q.status), ("agent", q.agent), ("since", since), ("parent", q.parent))
        if value is not None and value != ""
    }
    page, count = _list_statements(tuple(values), q.after is not None)
    position: dict[str, Any] = {}
    if q.after is not None:
        position = {"after_seen": q.after[0], "after_id": q.after[1]}
    with snapshot(engine) as conn:  # the page and the count see the same sessions
        # one row more than asked says whether a page follows, so the last page has no cursor
        rows = page.mappings(conn, lim=q.limit + 1, off=q.offset, **values, **position)
        total = count.rows(conn, **values)[0][0]
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1]["last_seen_at"], rows[-1]["id"]) if more else None
    return rows, total, nxt


_SESSION = Prepared(select(aop_sessions).where(aop_sessions.c.id == bindparam("sid")))
# The bytes as sent, or the stored body when none were kept (never both: the body is large).
# An AOP session's sequences are unique (a resent step is stored once), so a page starts
# after the last sequence of the one before.
_RAW_EVENTS = Prepared(
    select(events.c.sequence, events.c.raw, case((events.c.raw.is_(None), events.c.body), else_=null()))
    .where(
        and_(
            events.c.session_id == bindparam("sid"),
            events.c.source_format == "aop",
            events.c.sequence > bindparam("after"),
        )
    )
    .order_by(events.c.sequence, events.c.seq)
    .limit(bindparam("lim"))
)


def get_session(engine: Engine | Connection, session_id: str) -> dict[str, Any] | None:
    with _conn(engine) as conn:
        rows = _SESSION.mappings(conn, sid=session_id)
    return rows[0] if rows else None


def raw_events(
    engine: Engine | Connection, session_id: str, *, after: int = -1, limit: int = 10_000
) -> list[tuple[int, bytes]]:
    """``(sequence, bytes as sent)`` of a session's AOP events with a sequence above
    ``after``, in sequence order, at most ``limit`` of them."""
    with _conn(engine) as conn:
        return [
            (sequence, raw if raw is not None else body.encode())
            for sequence, raw, body in _RAW_EVENTS.rows(conn, sid=session_id, after=after, lim=limit)
        ]


def aop_alert(row: dict[str, Any]) -> dict[str, Any]:
    """An alert in the original collector's shape, plus our own fields beside it."""
    severity = row["severity"]
    return {
        "id": row["id"],
        "session_id": row["session_id"],
        "type": row["rule_id"].removeprefix("aop."),
        "message": row["message"],
        "severity": "critical" if severity >= 9 else ("warning" if severity >= 4 else "info"),
        "created_at": iso(row["created_at"]),
        "severity_score": severity,
        "count": row["count"],
        "status": row["status"],
        "rule_id": row["rule_id"],
        "last_seen": iso(row["last_seen"]),
    }


_ALERTS = Prepared(
    select(alerts)
    .where(alerts.c.session_id == bindparam("sid"))
    .order_by(alerts.c.created_at, alerts.c.id)
    .limit(bindparam("lim"))
)
_CHILDREN = Prepared(
    select(aop_sessions)
    .where(aop_sessions.c.parent_session_id == bindparam("sid"))
    .order_by(aop_sessions.c.started_at, Bytewise(aop_sessions.c.id))
    .limit(bindparam("lim"))
)


def session_alerts(engine: Engine | Connection, session_id: str, limit: int = 500) -> list[dict[str, Any]]:
    with _conn(engine) as conn:
        return [aop_alert(r) for r in _ALERTS.mappings(conn, sid=session_id, lim=limit)]


MAX_CHILDREN = 1000  # listed in a session's detail; ``GET /sessions?parent=`` pages through all


def children(engine: Engine | Connection, session_id: str, limit: int = MAX_CHILDREN) -> list[dict[str, Any]]:
    with _conn(engine) as conn:
        return _CHILDREN.mappings(conn, sid=session_id, lim=limit)


def count_children(engine: Engine | Connection, session_id: str) -> int:
    with _conn(engine) as conn:
        stmt = select(func.count()).select_from(aop_sessions).where(aop_sessions.c.parent_session_id == session_id)
        return int(conn.execute(stmt).scalar_one())


def known(engine: Engine, session_id: str) -> bool:
    """A session exists when it has a derived row or stored AOP events."""
    with engine.connect() as conn:
        if conn.execute(select(aop_sessions.c.id).where(aop_sessions.c.id == session_id)).first():
            return True
        stmt = select(events.c.seq).where(and_(events.c.session_id == session_id, events.c.source_format == "aop"))
        return conn.execute(stmt.limit(1)).first() is not None


class TreeTooLarge(ValueError):
    """A recursive delete would take more than ``MAX_SUBTREE`` sessions at once."""


def subtree(engine: Engine, session_id: str) -> list[str]:
    """The session and all its descendants (breadth first); raises TreeTooLarge past
    ``MAX_SUBTREE`` sessions, rather than answering with part of the tree."""
    out = [session_id]
    seen = {session_id}
    frontier = [session_id]
    with engine.connect() as conn:
        while frontier:
            nxt: list[str] = []
            for i in range(0, len(frontier), CHUNK):
                chunk = frontier[i : i + CHUNK]
                stmt = select(aop_sessions.c.id).where(aop_sessions.c.parent_session_id.in_(chunk))
                for (child,) in conn.execute(stmt):
                    if child not in seen:
                        seen.add(child)
                        out.append(child)
                        nxt.append(child)
            if len(out) > MAX_SUBTREE:
                raise TreeTooLarge(
                    f"recursive: the tree of {session_id!r} holds more than {MAX_SUBTREE:,} sessions;"
                    " delete its subtrees first"
                )
            frontier = nxt
    return out


def agents_of(conn: Connection, ids: Sequence[str]) -> list[str]:
    """The agents named by these sessions' rows or AOP events (what the sessions may have left
    in an agent's rule history)."""
    found: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        chunk = list(ids[i : i + CHUNK])
        found.update(conn.execute(select(aop_sessions.c.agent_id).where(aop_sessions.c.id.in_(chunk))).scalars())
        cond = and_(events.c.session_id.in_(chunk), events.c.source_format == "aop", events.c.agent.is_not(None))
        found.update(conn.execute(select(events.c.agent).where(cond).distinct()).scalars())
    return sorted(a for a in found if a)


def delete_sessions(conn: Connection, ids: Sequence[str], alert_ids: list[str] | None = None) -> dict[str, int]:
    """Delete sessions with their events and alerts (and the alerts' feedback and cached
    explanations), in the caller's transaction; returns how many rows of each went, and adds
    the ids of the alerts deleted to ``alert_ids`` when given.

    The session rows go first: a commit writes its session row before its rule state, so a
    delete that then clears the rule state takes the rows' locks in the same order. The running
    totals of ``/api/stats`` and the entity index's counts lose the deleted events too."""
    counts = {"sessions": 0, "events": 0, "alerts": 0}
    for i in range(0, len(ids), CHUNK):
        chunk = list(ids[i : i + CHUNK])
        se = conn.execute(delete(aop_sessions).where(aop_sessions.c.id.in_(chunk)))
        of_chunk = and_(events.c.session_id.in_(chunk), events.c.source_format == "aop")
        by_type = conn.execute(select(events.c.event_type, func.count()).where(of_chunk).group_by(events.c.event_type))
        counters_store.take(conn, Counter({("event_type", t): n for t, n in by_type}))
        entity_index.forget(conn, conn.execute(select(events.c.entity_ids).where(of_chunk)).scalars().all())
        gone = delete_where(conn, of_chunk)
        of_sessions = alerts.c.session_id.in_(chunk)
        doomed = conn.execute(select(alerts.c.id, alerts.c.dedup_key).where(of_sessions)).all()
        # the alerts' own lock, as DELETE /api/v1/alerts/{id} takes it: a verdict or an explanation
        # on its way waits for this transaction, then finds the alert gone instead of outliving it
        lock_dedup_keys(conn, [key for _id, key in doomed])
        delete_dependents(conn, [alert_id for alert_id, _key in doomed])
        al = conn.execute(delete(alerts).where(of_sessions))
        if alert_ids is not None:
            alert_ids.extend(alert_id for alert_id, _key in doomed)
        counts["sessions"] += se.rowcount or 0
        counts["events"] += gone
        counts["alerts"] += al.rowcount or 0
    return counts


def stall(engine: Engine, cutoff: float, limit: int = 1000) -> list[dict[str, Any]]:
    """Mark running sessions silent since before ``cutoff`` as ``timeout``; returns them."""
    stmt = (
        select(aop_sessions)
        .where(and_(aop_sessions.c.status == "running", aop_sessions.c.last_seen_at < cutoff))
        .order_by(aop_sessions.c.last_seen_at)
        .limit(limit)
    )
    marked: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for r in conn.execute(stmt).all():
            res = conn.execute(
                update(aop_sessions)
                .where(
                    and_(
                        aop_sessions.c.id == r.id,
                        aop_sessions.c.status == "running",
                        aop_sessions.c.last_seen_at < cutoff,
                    )
                )
                .values(status="timeout")
            )
            if res.rowcount:
                marked.append({**dict(r._mapping), "status": "timeout"})
    return marked


def replay_after(
    engine: Engine, last_event_id: str, session_id: str | None, limit: int
) -> tuple[list[tuple[str, bytes]], list[dict[str, Any]]] | None:
    """Stored AOP events after ``last_event_id`` (and alerts since then); None if it is unknown."""
    with engine.connect() as conn:
        mark = conn.execute(
            select(events.c.seq, events.c.received_at).where(events.c.event_id == last_event_id)
        ).first()
        if mark is None:
            return None
        cond = [events.c.seq > mark.seq, events.c.source_format == "aop"]
        if session_id:
            cond.append(events.c.session_id == session_id)
        cols = select(events.c.event_id, events.c.raw, events.c.body)
        rows = conn.execute(cols.where(and_(*cond)).order_by(events.c.seq).limit(limit)).all()
        acond = [alerts.c.updated_at >= mark.received_at, alerts.c.session_id.is_not(None)]
        if session_id:
            acond.append(alerts.c.session_id == session_id)
        arows = conn.execute(
            select(alerts).where(and_(*acond)).order_by(alerts.c.updated_at, alerts.c.id).limit(limit)
        ).all()
    evs = [(r.event_id, r.raw if r.raw is not None else r.body.encode()) for r in rows]
    return evs, [aop_alert(dict(r._mapping)) for r in arows]


def one_line(raw: bytes) -> bytes:
    """The event as one JSON line (events sent pretty-printed are re-encoded compactly)."""
    if b"\n" in raw or b"\r" in raw:
        return orjson.dumps(orjson.loads(raw))
    return raw
