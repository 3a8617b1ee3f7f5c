"""The OISP Sensor API: health, stats, events, processes, filters, traces."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import PUBLIC, require
from agentwatch.events.model import EventError, iso, parse_ts
from agentwatch.store import counters, processes, traces
from agentwatch.store import events as event_store

router = APIRouter(tags=["oisp"])


def health_fragment(aw: Any) -> dict[str, Any]:
    exported = aw.pipeline.committed_total
    return {
        "capture": {
            "running": aw.pipeline._worker is not None,
            "events_captured": exported,
        },
        "exports": {
            "store": {"status": "ok", "events_exported": exported},
            "websocket": {"status": "ok", "clients": aw.hub.count("event")},
        },
    }


@router.get("/api/health", dependencies=[require(PUBLIC)])
def health(request: Request) -> dict[str, Any]:
    aw = request.app.state.aw
    doc: dict[str, Any] = {
        "status": "healthy",
        "uptime_seconds": int(time.time() - aw.started_at),
        "version": aw.version,
    }
    for _name, fragment in aw.registry.health.items():
        for key, value in fragment(aw).items():
            if isinstance(value, dict) and isinstance(doc.get(key), dict):
                doc[key] = {**doc[key], **value}
            else:
                doc[key] = value
    return doc


def _count(v: float) -> int:
    """A stored counter as a JSON integer (saturating: the encoder holds signed 64 bits)."""
    return int(min(max(v, 0.0), 2**63 - 1)) if v == v else 0


# The families /api/stats shows, and the totals it needs whatever their rank among the types
STATS_FAMILIES = ("event_type", "ai_provider", "ai_model", "ai_tokens", "ai_cost")
AI_CALLS = (("event_type", "ai.request"), ("event_type", "ai.response"))


def _counts(family: counters.Family) -> dict[str, int]:
    return {k: _count(v) for k, v in family.top.items()}


@router.get("/api/stats", dependencies=[require("events:read")])
async def stats(request: Request) -> dict[str, Any]:
    """The documented statistics. ``by_type``, ``providers`` and ``models`` list at most
    ``counters.TOP_N`` keys each (the largest); the ``*_other`` field next to each holds what
    the keys left out add up to, and ``events.total`` counts every event."""
    aw = request.app.state.aw
    c = await run_in_threadpool(counters.read, aw.engine, STATS_FAMILIES, AI_CALLS)
    types, providers, models = c.family("event_type"), c.family("ai_provider"), c.family("ai_model")
    tokens = c.family("ai_tokens").top
    return {
        "events": {
            "total": _count(types.total),
            "by_type": dict(sorted(_counts(types).items())),
            "by_type_other": _count(types.rest),
        },
        "ai": {
            "requests": _count(c.value(*AI_CALLS[0])),
            "responses": _count(c.value(*AI_CALLS[1])),
            "tokens": {
                "prompt": _count(tokens.get("prompt", 0)),
                "completion": _count(tokens.get("completion", 0)),
                "total": _count(tokens.get("total", 0)),
            },
            "cost_usd": round(c.family("ai_cost").top.get("usd", 0.0), 6),
            "providers": _counts(providers),
            "providers_other": _count(providers.rest),
            "models": _counts(models),
            "models_other": _count(models.rest),
        },
        "capture": {
            "running": aw.pipeline._worker is not None,
            "uptime_ms": int((time.time() - aw.started_at) * 1000),
            "events_per_second": aw.pipeline.events_per_second(),
        },
    }


def parse_since(value: str | None, field: str = "since") -> float | None:
    if value is None:
        return None
    try:
        return parse_ts(value, field)
    except EventError as exc:
        raise InvalidRequest(str(exc)) from None


EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*$"


@router.get(
    "/api/events",
    dependencies=[
        require("events:read"),
        only_query("limit", "offset", "type", "process", "since", "session_id"),
    ],
)
async def list_events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    type: Annotated[str | None, Query(max_length=128, pattern=EVENT_TYPE_PATTERN)] = None,
    process: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    aw = request.app.state.aw
    q = event_store.EventQuery(
        limit=limit,
        offset=offset,
        event_type=type,
        process=process,
        since=parse_since(since),
        session_id=session_id,
    )
    rows, total = await run_in_threadpool(event_store.query, aw.engine, q)
    return {"events": rows, "total": total, "limit": limit, "offset": offset}


@router.get("/api/events/{event_id:path}", dependencies=[require("events:read")])  # ids may hold "/"
async def get_event(request: Request, event_id: str) -> Any:
    if len(event_id) > 128:
        raise InvalidRequest("event_id: longer than 128 characters")
    body = await run_in_threadpool(event_store.get, request.app.state.aw.engine, event_id)
    if body is None:
        raise NotFound("Event not found", {"event_id": event_id})
    return body


@router.get("/api/processes", dependencies=[require("events:read"), only_query("limit")])
async def list_processes(request: Request, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict[str, Any]:
    rows = await run_in_threadpool(processes.list_all, request.app.state.aw.engine, limit)
    return {
        "processes": [
            {
                "pid": r["pid"],
                "ppid": r["ppid"],
                "name": r["name"],
                "exe": r["exe"],
                "cmdline": r["cmdline"],
                "host": r["host"] or None,
                "start_time": iso(r["start_time"]),
                "last_seen": iso(r["last_seen"]),
                "exited_at": iso(r["exited_at"]) if r["exited_at"] is not None else None,
                "event_count": r["event_count"],
            }
            for r in rows
        ]
    }


MAX_TREE_DEPTH = 100  # levels under a root: the answer's JSON must nest less than 255 deep


def build_tree(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Processes as trees by parent pid, per host.

    The parent pids come from events, so they may loop (two processes naming each other, a
    reused pid): each loop is cut at its lowest pid, which becomes a root, so no process is
    left out. A process deeper than ``MAX_TREE_DEPTH`` levels starts a tree of its own (every
    node names its ``ppid``), so the answer can always be serialised.
    """
    nodes: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        nodes[(r["host"], r["pid"])] = {
            "pid": r["pid"],
            "ppid": r["ppid"],
            "name": r["name"],
            "exe": r["exe"],
            "host": r["host"] or None,
            "children": [],
        }
    keys = sorted(nodes)
    parent: dict[tuple[str, int], tuple[str, int] | None] = {}
    for key in keys:
        ppid = nodes[key]["ppid"]
        up = (key[0], ppid) if ppid is not None else None
        parent[key] = up if up in nodes and up != key else None
    # Cut every loop: follow each chain of parents, marking the nodes on it, until a root or a
    # node already settled; reaching a node of the chain being followed closes a loop.
    settled: set[tuple[str, int]] = set()
    for key in keys:
        chain: list[tuple[str, int]] = []
        on_chain: set[tuple[str, int]] = set()
        at: tuple[str, int] | None = key
        while at is not None and at not in settled and at not in on_chain:
            chain.append(at)
            on_chain.add(at)
            at = parent[at]
        if at is not None and at in on_chain:
            parent[min(chain[chain.index(at) :])] = None
        settled.update(chain)
    roots: list[dict[str, Any]] = []
    for key in keys:
        up = parent[key]
        (roots if up is None else nodes[up]["children"]).append(nodes[key])
    # Re-root what lies too deep (iteratively: the tree itself may be deep).
    todo = [(root, 0) for root in roots]
    while todo:
        node, depth = todo.pop()
        if depth + 1 >= MAX_TREE_DEPTH and node["children"]:
            roots.extend(node["children"])
            todo.extend((child, 0) for child in node["children"])
            node["children"] = []
            continue
        todo.extend((child, depth + 1) for child in node["children"])
    return roots


@router.get("/api/process-tree", dependencies=[require("events:read")])
async def process_tree(request: Request) -> dict[str, Any]:
    rows = await run_in_threadpool(processes.list_all, request.app.state.aw.engine, 10_000)
    return {"tree": build_tree(rows)}


class ProcessFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)


class PidFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pid: int = Field(ge=0, le=2**31)


@router.get("/api/filters", dependencies=[require("events:read")])
def get_filters(request: Request) -> dict[str, Any]:
    filters = request.app.state.aw.filters
    filters.refresh()  # changed through another node: read again once stale
    return filters.as_dict()


def _change(fn: Any, value: Any) -> None:
    try:
        fn(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None


FILTER_BODY_BYTES = 64 * 1024


@router.post(
    "/api/filters/process", dependencies=[require("filters:write")], openapi_extra=json_body_doc(ProcessFilter)
)
async def add_process_filter(request: Request) -> dict[str, Any]:
    body = await read_model(request, ProcessFilter, FILTER_BODY_BYTES)
    aw = request.app.state.aw
    await run_in_threadpool(_change, aw.filters.add_process, body.name)
    return aw.filters.as_dict()


@router.post("/api/filters/pid", dependencies=[require("filters:write")], openapi_extra=json_body_doc(PidFilter))
async def add_pid_filter(request: Request) -> dict[str, Any]:
    body = await read_model(request, PidFilter, FILTER_BODY_BYTES)
    aw = request.app.state.aw
    await run_in_threadpool(_change, aw.filters.add_pid, body.pid)
    return aw.filters.as_dict()


@router.delete("/api/filters", dependencies=[require("filters:write")])
async def clear_filters(request: Request) -> dict[str, Any]:
    aw = request.app.state.aw
    await run_in_threadpool(aw.filters.clear)
    return aw.filters.as_dict()


@router.get("/api/traces", dependencies=[require("events:read"), only_query("limit", "offset")])
async def list_traces(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    rows, total = await run_in_threadpool(traces.list_traces, request.app.state.aw.engine, limit, offset)
    return {"traces": rows, "total": total, "limit": limit, "offset": offset}


@router.get("/api/traces/{trace_id}", dependencies=[require("events:read")])
async def get_trace(request: Request, trace_id: str) -> dict[str, Any]:
    if len(trace_id) > 64:
        raise InvalidRequest("trace_id: longer than 64 characters")
    trace = await run_in_threadpool(traces.get_trace, request.app.state.aw.engine, trace_id)
    if trace is None:
        raise NotFound("Trace not found", {"trace_id": trace_id})
    return trace
