"""Processes seen in events: one row per (host, pid), for the process list and tree.

``trace_id`` is the process's live trace, written by the trace stage (``set_traces``) in the
transaction that stores the events, and read back when the pipeline starts (``live_traces``),
so a restart does not start a new trace for a process that is still active.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, select, update

from agentwatch.events.model import BY_TIME, Event, int64
from agentwatch.store.schema import processes
from agentwatch.store.upsert import upsert

HOST_WIDTH = processes.c.host.type.length


def host_of(e: Event) -> str:
    """The ``host`` key of the event's process row ("" when the event names no host)."""
    h = e.hostname
    return "" if h is None else h[:HOST_WIDTH]


FACTS = ("ppid", "name", "exe", "cmdline")
# the name column's width (PostgreSQL refuses longer); exe and cmdline are text
WIDTH = {"name": processes.c.name.type.length}


def _learn(row: dict[str, Any], e: Event, proc: dict[str, Any]) -> None:
    """Fill the facts this event knows and the row does not yet."""
    facts = proc
    if e.event_type == "process.exec":
        data = e.data
        args = data.get("args")
        facts = {
            **proc,
            "exe": proc.get("exe") or data.get("exe"),
            "cmdline": proc.get("cmdline") or (" ".join(str(a) for a in args) if isinstance(args, list) else None),
        }
    for col in FACTS:
        v = facts.get(col)
        if v is not None and row[col] is None:
            row[col] = int64(v) if col == "ppid" else str(v)[: WIDTH.get(col, 4096)]
    if e.event_type == "process.exit":
        row["exited_at"] = e.ts
    row["complete"] = all(row[c] is not None for c in FACTS)


def _reused(row: dict[str, Any], e: Event) -> bool:
    """Whether ``e`` belongs to a new process under the pid of one that has exited: it happened
    after that exit (a process does nothing once it has exited)."""
    return row["exited_at"] is not None and e.ts > row["exited_at"]


def rows_of(batch: Sequence[Event]) -> list[dict[str, Any]]:
    """What ``batch`` tells of its processes: one row per (host, pid), in key order (``write``
    takes them). Reads no stored row, so the pipeline builds them before it waits for the
    write lock."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    # In event time when the batch holds an exit, so the exit precedes a reuse of its pid
    # (without one, the order cannot matter: no row of this batch has exited).
    has_exit = any(e.event_type == "process.exit" for e in batch)
    for e in sorted(batch, key=BY_TIME) if has_exit else batch:
        pid = e.pid
        if pid is None:
            continue
        key = (host_of(e), pid)
        row = merged.get(key)
        if row is None or _reused(row, e):
            row = merged[key] = {
                "host": key[0],
                "pid": pid,
                "ppid": None,
                "name": None,
                "exe": None,
                "cmdline": None,
                "start_time": e.ts,
                "last_seen": e.ts,
                "exited_at": None,
                "event_count": 0,
                "complete": False,  # every fact known: later events only count
            }
        row["event_count"] += 1
        if e.ts < row["start_time"]:
            row["start_time"] = e.ts
        elif e.ts > row["last_seen"]:
            row["last_seen"] = e.ts
        if row["complete"]:
            if e.event_type == "process.exit":
                row["exited_at"] = e.ts
            continue
        _learn(row, e, e.process)
    rows = []
    for row in sorted(merged.values(), key=lambda r: (r["host"], r["pid"])):
        del row["complete"]
        rows.append(row)
    return rows


def write(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Merge ``rows_of``'s rows into the stored ones."""
    upsert(
        conn,
        processes,
        rows,
        ["host", "pid"],
        {
            "ppid": lambda t, ex: _new_or(t, ex, ex.ppid, func.coalesce(ex.ppid, t.c.ppid)),
            "name": lambda t, ex: _new_or(t, ex, ex.name, func.coalesce(ex.name, t.c.name)),
            "exe": lambda t, ex: _new_or(t, ex, ex.exe, func.coalesce(ex.exe, t.c.exe)),
            "cmdline": lambda t, ex: _new_or(t, ex, ex.cmdline, func.coalesce(ex.cmdline, t.c.cmdline)),
            "start_time": lambda t, ex: _new_or(
                t,
                ex,
                ex.start_time,
                func.min(t.c.start_time, ex.start_time)
                if conn.dialect.name == "sqlite"
                else func.least(t.c.start_time, ex.start_time),
            ),
            "last_seen": lambda t, ex: (
                func.max(t.c.last_seen, ex.last_seen)
                if conn.dialect.name == "sqlite"
                else func.greatest(t.c.last_seen, ex.last_seen)
            ),
            "exited_at": lambda t, ex: _new_or(t, ex, ex.exited_at, func.coalesce(ex.exited_at, t.c.exited_at)),
            "event_count": lambda t, ex: _new_or(t, ex, ex.event_count, t.c.event_count + ex.event_count),
        },
    )


def _new_or(t: Any, ex: Any, new: Any, merged: Any) -> Any:
    """On a key conflict: the incoming value when the incoming row is a new process under a
    reused pid (all its events after the stored process exited), else the merge of both.
    Every SET expression reads the row as it was before the update."""
    reused = and_(t.c.exited_at.is_not(None), ex.start_time > t.c.exited_at)
    return case((reused, new), else_=merged)


_SET_TRACE = (
    update(processes)
    .where(processes.c.host == bindparam("b_host"), processes.c.pid == bindparam("b_pid"))
    .values(trace_id=bindparam("b_trace"))
)


def set_traces(conn: Connection, traces: dict[tuple[str, int], str]) -> None:
    """Record the live trace of each ``(host, pid)`` (rows written by :func:`record` before)."""
    if traces:
        rows = [{"b_host": h, "b_pid": p, "b_trace": t} for (h, p), t in sorted(traces.items())]
        conn.execute(_SET_TRACE, rows)


def live_traces(engine: Engine, limit: int) -> list[tuple[str, int, str, float]]:
    """``(host, pid, trace_id, last_seen)`` of the ``limit`` processes seen last, oldest first."""
    stmt = (
        select(processes.c.host, processes.c.pid, processes.c.trace_id, processes.c.last_seen)
        .where(processes.c.trace_id.is_not(None))
        .order_by(processes.c.last_seen.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [(r.host, r.pid, r.trace_id, r.last_seen) for r in conn.execute(stmt)]
    return rows[::-1]


def list_all(engine: Engine, limit: int = 1000) -> list[dict[str, Any]]:
    stmt = select(processes).order_by(processes.c.last_seen.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def active_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(processes).where(processes.c.exited_at.is_(None))
        ).scalar_one()
