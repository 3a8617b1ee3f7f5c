"""Sessions derived on the server from AOP events (a pipeline stage).

The stage runs in the pipeline's worker thread inside the transaction that stores
the events, so when ``POST /events`` answers, ``GET /sessions/{id}`` already shows
the event's effect. It sees only the events stored for the first time (a resent
``(session_id, sequence)`` is not), so derivation counts each session step once.

Goal: the goal a ``session.started`` declares, else the earliest ``cognition.goal`` in event
time (sequence breaking ties), whatever order they arrive in. The declared goal ranks first
because it is what the session was started to do; a ``cognition.goal`` is the agent's own
statement during the run, and the first of those in time is the closest to it. Among several
``session.started`` the earliest in event time gives it. The rank, event time and sequence of
the goal taken are kept beside it (``goal_rank``, ``goal_at``, ``goal_sequence``), so a
goal arriving later is weighed against it without reading events back.

Status: ``running`` until ``session.ended`` sets its outcome (completed, failed,
cancelled, timeout); the stall check turns a silent running session into
``timeout``, and a later event of that session makes it ``running`` again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, select

from agentwatch.events.model import Event, iso
from agentwatch.sessions import lineage, queries
from agentwatch.sessions.schema import aop_sessions
from agentwatch.store.upsert import upsert

log = structlog.get_logger("agentwatch.sessions")
CHUNK = 500
FEW = 16  # up to this many sessions are read one by one, more with IN queries of CHUNK
STEP_PREFIXES = ("aop.cognition.", "aop.operation.")
# ``reported_steps`` is a 32-bit INTEGER column (PostgreSQL refuses more), while a reported
# step is validated only up to 2^63-1: a larger one is kept as this cap, not a failed commit.
MAX_STEPS = 2**31 - 1


def session_events(events: Sequence[Event]) -> list[Event]:
    """The AOP events among ``events`` that belong to a session, in session order."""
    out = [e for e in events if e.source_format == "aop" and e.session_id]
    out.sort(key=lambda e: (e.ts, e.sequence or 0))
    return out


def new_row(e: Event) -> dict[str, Any]:
    return {
        "id": e.session_id,
        "agent_id": e.agent or "",
        "agent_version": None,
        "parent_session_id": e.parent_session_id,
        "goal": None,
        "goal_rank": None,
        "goal_at": None,
        "goal_sequence": None,
        "status": "running",
        "outcome": None,
        "started_at": e.ts,
        "ended_at": None,
        "last_event_at": e.ts,
        "last_seen_at": e.received_at,
        "event_count": 0,
        "event_steps": 0,
        "reported_steps": 0,
        "reported_tokens": 0.0,
        "summed_tokens": 0.0,
        "reported_cost": None,
        "summed_cost": None,
        "max_sequence": e.sequence or 0,
    }


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


GOAL_RANK = {"session.started": 0, "cognition.goal": 1}  # the lower ranks first, then event time


def _offer_goal(row: dict[str, Any], goal: str, key: tuple[int, float, int]) -> None:
    """Take ``goal`` if it ranks before the session's goal: by (rank, event time, sequence).
    A goal of unknown origin (derived before its rank was kept) gives way only to a declared
    one, as every goal did to a session.started then."""
    if row["goal"]:
        if row["goal_rank"] is None:
            if key[0] != GOAL_RANK["session.started"]:
                return
        elif key >= (row["goal_rank"], row["goal_at"], row["goal_sequence"]):
            return
    row["goal"] = goal
    row["goal_rank"], row["goal_at"], row["goal_sequence"] = key


def apply(row: dict[str, Any], e: Event) -> dict[str, Any]:
    """Fold one event into the session row (pure; used by the stage and by tests)."""
    d = e.data
    kind = e.event_type.removeprefix("aop.")
    row["event_count"] += 1
    row["last_event_at"] = max(row["last_event_at"], e.ts)
    row["last_seen_at"] = max(row["last_seen_at"], e.received_at)
    row["started_at"] = min(row["started_at"], e.ts)
    row["max_sequence"] = max(row["max_sequence"], e.sequence or 0)
    if e.parent_session_id and not row["parent_session_id"]:
        row["parent_session_id"] = e.parent_session_id
    version = e.body.get("attrs", {}).get("aop.agent_version")
    if version:
        row["agent_version"] = version
    if e.event_type.startswith(STEP_PREFIXES):
        row["event_steps"] += 1
    # ``started_at`` is the earliest event time, whatever arrives first (an agent may report
    # before its session.started, and a resent or replayed event may come late).
    if kind in GOAL_RANK and d.get("goal"):
        _offer_goal(row, d["goal"], (GOAL_RANK[kind], e.ts, e.sequence or 0))
    if kind in ("session.heartbeat", "session.ended"):
        steps = d.get("step", d.get("total_steps"))
        if isinstance(steps, int):
            row["reported_steps"] = max(row["reported_steps"], min(steps, MAX_STEPS))
        if isinstance(d.get("total_tokens"), int | float):
            row["reported_tokens"] = max(row["reported_tokens"], float(d["total_tokens"]))
        row["reported_cost"] = _max(row["reported_cost"], d.get("total_cost_usd"))
    if isinstance(d.get("tokens"), int | float):
        row["summed_tokens"] += float(d["tokens"])
    if isinstance(d.get("cost_usd"), int | float):
        row["summed_cost"] = (row["summed_cost"] or 0.0) + float(d["cost_usd"])
    if kind == "session.ended":
        # The latest end in event time has the last word: an older one arriving after it (a
        # resend, a replayed spill file) changes neither the outcome nor the end time.
        if row["ended_at"] is None or e.ts >= row["ended_at"]:
            row["outcome"] = d.get("outcome", "completed")
            row["status"] = row["outcome"]
            row["ended_at"] = e.ts
    elif row["outcome"] is None:
        row["status"] = "running"
    return row


def load_rows(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if len(ids) <= FEW and conn.dialect.name == "sqlite":
        # A session's first event (or one evicted from the cache): on SQLite a compiled point
        # query each costs a few microseconds, building an IN query through SQLAlchemy over a
        # hundred. On PostgreSQL each query is a round trip: one IN query is cheaper.
        for sid in ids:
            row = queries.get_session(conn, sid)
            if row is not None:
                rows[sid] = row
        return rows
    for i in range(0, len(ids), CHUNK):
        chunk = list(ids[i : i + CHUNK])
        for r in conn.execute(select(aop_sessions).where(aop_sessions.c.id.in_(chunk))):
            rows[r.id] = dict(r._mapping)
    return rows


_COLUMNS = [c.name for c in aop_sessions.columns if c.name != "id"]
_UPDATE = {name: (lambda _t, ex, _n=name: getattr(ex, _n)) for name in _COLUMNS}


class RowCache:
    """Recently written session rows, so a busy session is not read back before every batch.

    Only one writer may use it (the standalone pipeline's worker): with several workers
    sharing a database each would hold stale rows, so it is off in that case. The stall
    check changes only ``status`` in the store, and the next event of that session sets
    the status again anyway; a deleted session is evicted by the delete, which runs between
    two commits (``SessionService.delete``).
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._rows: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, ids: Sequence[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        found = {i: self._rows[i] for i in ids if i in self._rows}
        return found, [i for i in ids if i not in found]

    def put(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self._rows[row["id"]] = row
            self._rows.move_to_end(row["id"])
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def evict(self, ids: Sequence[str]) -> None:
        for i in ids:
            self._rows.pop(i, None)

    def clear(self) -> None:
        self._rows.clear()


def fold(conn: Connection, fresh: Sequence[Event], cache: RowCache | None = None) -> list[dict[str, Any]]:
    """The session rows touched by ``fresh`` events, with those events applied (nothing written)."""
    ids = list(dict.fromkeys(e.session_id for e in fresh if e.session_id))
    if cache is not None:
        cached, missing = cache.get(ids)
        rows = {k: dict(v) for k, v in cached.items()}
        rows.update(load_rows(conn, missing))
    else:
        rows = load_rows(conn, ids)
    linked: list[str] = []  # sessions that took a parent in this batch
    for e in fresh:
        sid: str = e.session_id  # type: ignore[assignment]
        row = rows.get(sid)
        had_parent = row is not None and row["parent_session_id"] is not None
        if row is None:
            row = rows[sid] = new_row(e)
        apply(row, e)
        if not had_parent and row["parent_session_id"] is not None:
            linked.append(sid)
    lineage.cut_loops(conn, rows, linked)
    return [rows[i] for i in ids]


class SessionStage:
    """Pipeline stage ``aop_sessions``: keeps ``aop_sessions`` in step with the events.

    Its work happens in the events' own transaction (``in_commit``), on exactly the events
    stored for the first time, so a resent ``(session_id, sequence)`` never counts twice and
    a session row is committed with its events or not at all.
    """

    name = "aop_sessions"

    def __init__(self, cache: RowCache | None = None) -> None:
        self.cache = cache

    def process(self, batch: list[Event]) -> list[Event]:
        return batch

    def in_commit(self, conn: Connection, fresh: list[Event]) -> Callable[[], None] | None:
        events = session_events(fresh)
        if not events:
            return None
        try:
            written = fold(conn, events, self.cache)
        except Exception:  # a derivation bug must never lose the batch's events
            log.exception("sessions.derive_failed", events=len(events))
            if self.cache is not None:
                self.cache.clear()
            return None
        upsert(conn, aop_sessions, written, ["id"], _UPDATE)
        cache = self.cache
        if cache is None:
            return None
        return lambda: cache.put(written)  # only once the transaction has committed


def session_json(row: dict[str, Any], children: int | None = None) -> dict[str, Any]:
    """The session as the API shows it (the original collector's fields, plus more)."""
    cost = _max(row["reported_cost"], row["summed_cost"])
    doc: dict[str, Any] = {
        "id": row["id"],
        "agent_id": row["agent_id"],
        "agent_version": row["agent_version"],
        "parent_session_id": row["parent_session_id"],
        "goal": row["goal"],
        "status": row["status"],
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]) if row["ended_at"] is not None else None,
        "last_seen_at": iso(row["last_seen_at"]),
        "last_event_at": iso(row["last_event_at"]),
        "total_steps": max(row["reported_steps"], row["event_steps"]),
        "total_tokens": int(min(max(row["reported_tokens"], row["summed_tokens"]), 2**63 - 1)),
        "total_cost_usd": round(cost, 6) if cost is not None else None,
        "event_count": row["event_count"],
    }
    if children is not None:
        doc["children_count"] = children
    return doc
