"""Processes seen in events: one row per (host, pid), for the process list and tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select

from agentwatch.events.model import Event
from agentwatch.store.columns import int64
from agentwatch.store.schema import processes
from agentwatch.store.upsert import upsert


def _host(e: Event) -> str:
    h = e.body.get("host")
    if isinstance(h, dict) and isinstance(h.get("hostname"), str):
        return h["hostname"][:256]
    return ""


FACTS = ("ppid", "name", "exe", "cmdline")
WIDTH = {"name": 256}  # the name column's width (PostgreSQL refuses longer); exe and cmdline are text


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
    """Whether ``e`` is the exec of a new process under the pid of one that has exited."""
    return e.event_type == "process.exec" and row["exited_at"] is not None and e.ts >= row["exited_at"]


# A pid is reused once its process has exited: the exec of the new process replaces the old row.
_forget_exited = (
    delete(processes)
    .where(processes.c.host == bindparam("k_host"))
    .where(processes.c.pid == bindparam("k_pid"))
    .where(processes.c.exited_at.is_not(None))
    .where(processes.c.exited_at <= bindparam("k_exec"))
)


def record(conn: Connection, batch: Sequence[Event]) -> None:
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for e in sorted(batch, key=lambda x: x.ts):  # in event time, so an exit precedes a reuse
        proc = e.process
        pid = int64(proc.get("pid"))
        if pid is None:
            continue
        key = (_host(e), pid)
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
                "trace_id": e.trace_id,
                "complete": False,  # every fact known: later events only count
                # this row begins with an exec: a stored row of an exited process it replaces
                "exec_ts": e.ts if e.event_type == "process.exec" else None,
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
        _learn(row, e, proc)
    rows = []
    execs = []
    for row in sorted(merged.values(), key=lambda r: (r["host"], r["pid"])):
        del row["complete"]
        exec_ts = row.pop("exec_ts")
        if exec_ts is not None:
            execs.append({"k_host": row["host"], "k_pid": row["pid"], "k_exec": exec_ts})
        rows.append(row)
    if execs:
        conn.execute(_forget_exited, execs)
    upsert(
        conn,
        processes,
        rows,
        ["host", "pid"],
        {
            "ppid": lambda t, ex: func.coalesce(ex.ppid, t.c.ppid),
            "name": lambda t, ex: func.coalesce(ex.name, t.c.name),
            "exe": lambda t, ex: func.coalesce(ex.exe, t.c.exe),
            "cmdline": lambda t, ex: func.coalesce(ex.cmdline, t.c.cmdline),
            "start_time": lambda t, ex: (
                func.min(t.c.start_time, ex.start_time)
                if conn.dialect.name == "sqlite"
                else func.least(t.c.start_time, ex.start_time)
            ),
            "last_seen": lambda t, ex: (
                func.max(t.c.last_seen, ex.last_seen)
                if conn.dialect.name == "sqlite"
                else func.greatest(t.c.last_seen, ex.last_seen)
            ),
            "exited_at": lambda t, ex: func.coalesce(ex.exited_at, t.c.exited_at),
            "event_count": lambda t, ex: t.c.event_count + ex.event_count,
            "trace_id": lambda t, ex: func.coalesce(t.c.trace_id, ex.trace_id),
        },
    )


def list_all(engine: Engine, limit: int = 1000) -> list[dict[str, Any]]:
    stmt = select(processes).order_by(processes.c.last_seen.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def active_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(processes).where(processes.c.exited_at.is_(None))
        ).scalar_one()
