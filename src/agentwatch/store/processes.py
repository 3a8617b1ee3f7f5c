"""Processes seen in events: one row per (host, pid), for the process list and tree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from agentwatch.events.model import Event
from agentwatch.store.schema import processes
from agentwatch.store.upsert import upsert


def _host(e: Event) -> str:
    h = e.body.get("host")
    if isinstance(h, dict) and isinstance(h.get("hostname"), str):
        return h["hostname"][:256]
    return ""


def record(conn: Connection, batch: Sequence[Event]) -> None:
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for e in batch:
        proc = e.process
        pid = proc.get("pid")
        if not isinstance(pid, int):
            continue
        key = (_host(e), pid)
        row = merged.get(key)
        if row is None:
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
            }
        row["event_count"] += 1
        row["start_time"] = min(row["start_time"], e.ts)
        row["last_seen"] = max(row["last_seen"], e.ts)
        facts = dict(proc)
        if e.event_type == "process.exec":
            data = e.data
            facts.setdefault("exe", data.get("exe"))
            args = data.get("args")
            if "cmdline" not in facts and isinstance(args, list):
                facts["cmdline"] = " ".join(str(a) for a in args)
        for col in ("ppid", "name", "exe", "cmdline"):
            v = facts.get(col)
            if v is not None and row[col] is None:
                row[col] = v if col == "ppid" else str(v)[:4096]
        if e.event_type == "process.exit":
            row["exited_at"] = e.ts
    rows = sorted(merged.values(), key=lambda r: (r["host"], r["pid"]))
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
