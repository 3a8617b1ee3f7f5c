"""Traces: events grouped by ``trace_id``; spans rebuilt from paired events.

Spans: an LLM call (``ai.request`` .. ``ai.response`` by ``request_id``), a tool
execution (``agent.tool_call`` .. ``agent.tool_result`` by ``call_id``), and a
process (``process.exec`` .. ``process.exit`` by pid). A trace is ``active``
until it has been idle for 300 s, then ``complete``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Engine, case, func, select

from agentwatch.events.model import iso
from agentwatch.store import trace_index
from agentwatch.store.schema import events

IDLE_S = 300.0
SPAN_OPENERS = ("ai.request", "agent.tool_call", "process.exec")


def _status(last_ts: float, now: float) -> str:
    return "complete" if now - last_ts > IDLE_S else "active"


def list_traces(engine: Engine, limit: int = 100, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    span_count = func.sum(case((events.c.event_type.in_(SPAN_OPENERS), 1), else_=0))
    stmt = (
        select(
            events.c.trace_id,
            func.min(events.c.ts).label("start"),
            func.max(events.c.ts).label("end"),
            func.count().label("n"),
            span_count.label("spans"),
        )
        .where(events.c.trace_id.is_not(None))
        .group_by(events.c.trace_id)
        .order_by(func.max(events.c.ts).desc())
        .limit(limit)
        .offset(offset)
    )
    total_stmt = select(func.count(func.distinct(events.c.trace_id))).where(events.c.trace_id.is_not(None))
    now = time.time()
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(total_stmt).scalar_one()
    return [
        {
            "trace_id": r.trace_id,
            "start_time": iso(r.start),
            "duration_ms": round((r.end - r.start) * 1000, 3),
            "span_count": int(r.spans or 0),
            "event_count": r.n,
            "status": _status(r.end, now),
        }
        for r in rows
    ], total


def _span(kind: str, name: str, start: dict[str, Any] | None, end: dict[str, Any] | None) -> dict[str, Any]:
    first = start or end or {}
    t0 = first.get("_ts", 0.0)
    t1 = (end or {}).get("_ts")
    return {
        "span_id": (start or end or {}).get("event_id"),
        "kind": kind,
        "name": name,
        "start_time": iso(t0),
        "end_time": iso(t1) if t1 is not None else None,
        "duration_ms": round((t1 - t0) * 1000, 3) if t1 is not None else None,
        "status": "complete" if end is not None and start is not None else "open",
        "event_ids": [x["event_id"] for x in (start, end) if x is not None],
        "pid": ((first.get("process") or {}).get("pid")),
    }


def build_spans(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    llm: dict[str, list[Any]] = {}
    tools: dict[str, list[Any]] = {}
    procs: dict[Any, list[Any]] = {}
    for e in evs:
        t = e.get("event_type")
        data = e.get("data") if isinstance(e.get("data"), dict) else {}
        if t in ("ai.request", "ai.response") and data.get("request_id"):
            pair = llm.setdefault(data["request_id"], [None, None, ""])
            pair[0 if t == "ai.request" else 1] = e
            model = data.get("model")
            if isinstance(model, dict) and model.get("id"):
                pair[2] = model["id"]
        elif t in ("agent.tool_call", "agent.tool_result"):
            call_id = data.get("call_id") or e.get("event_id")
            pair = tools.setdefault(call_id, [None, None, ""])
            pair[0 if t == "agent.tool_call" else 1] = e
            tool = data.get("tool")
            if isinstance(tool, dict) and tool.get("name"):
                pair[2] = tool["name"]
        elif t in ("process.exec", "process.exit"):
            pid = (e.get("process") or {}).get("pid")
            pair = procs.setdefault(pid, [None, None, ""])
            pair[0 if t == "process.exec" else 1] = e
            pair[2] = (e.get("process") or {}).get("name") or ""
    spans = [_span("llm_call", n or rid, a, b) for rid, (a, b, n) in llm.items()]
    spans += [_span("tool_call", n or cid, a, b) for cid, (a, b, n) in tools.items()]
    spans += [_span("process", n or str(pid), a, b) for pid, (a, b, n) in procs.items()]
    spans.sort(key=lambda s: s["start_time"])
    return spans


MAX_TRACE_EVENTS = 10_000


def get_trace(engine: Engine, trace_id: str) -> dict[str, Any] | None:
    stmt = (
        select(events.c.body, events.c.ts)
        .where(trace_index.of_trace(engine.dialect.name, trace_id))
        .order_by(events.c.ts, events.c.seq)
        .limit(MAX_TRACE_EVENTS)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return None
    evs = []
    for body, ts in rows:
        e = orjson.loads(body)
        e["_ts"] = ts
        evs.append(e)
    spans = build_spans(evs)
    start, end = rows[0].ts, rows[-1].ts
    for e in evs:
        e.pop("_ts", None)
    return {
        "trace_id": trace_id,
        "start_time": iso(start),
        "end_time": iso(end),
        "duration_ms": round((end - start) * 1000, 3),
        "span_count": len(spans),
        "event_count": len(evs),
        "status": _status(end, time.time()),
        "spans": spans,
        "events": evs,
    }
