"""``GET /api/v1/events``: Seerflow's paginated event search over the one event store."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.oisp import parse_since
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.detect.queries import entity_ids_for
from agentwatch.events.model import iso
from agentwatch.store import events as event_store
from agentwatch.store.snapshot import snapshot

router = APIRouter(prefix="/api/v1", tags=["events"])


def event_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["event_id"],
        "event_type": r["event_type"],
        "ts": iso(r["ts"]),
        "received_at": iso(r["received_at"]),
        "source": r["source_format"],
        "severity": r["severity"],
        "template_id": r["event_type"],
        "session_id": r["session_id"],
        "agent": r["agent"],
        "host": r["host"],
        "process": r["process_name"],
        "trace_id": r["trace_id"],
        "entities": orjson.loads(r["entities"]),
        "body": orjson.loads(r["body"]),
    }


def search(engine: Any, q: event_store.EventQuery, entity: str | None) -> tuple[list[dict[str, Any]], int, str | None]:
    """The page and its total, from one snapshot of the store (so they agree), also when
    ``entity`` tries one kind after another; and the id of the entity the events name (the
    first kind of the value with events; None without ``entity`` or when no kind has any)."""
    with snapshot(engine) as conn:
        if entity is None:
            rows, total = event_store.query_rows(conn, q)
            return [event_json(r) for r in rows], total, None
        # a value names one entity per kind: the first kind with events wins (ids are distinct per kind)
        for eid in entity_ids_for(entity):
            q.entity_id = eid
            rows, total = event_store.query_rows(conn, q)
            if total:
                return [event_json(r) for r in rows], total, eid
    return [], 0, None


@router.get(
    "/events",
    dependencies=[
        require("events:read"),
        only_query("since", "until", "source", "severity", "template_id", "entity", "q", "page", "limit"),
    ],
)
async def search_events(
    request: Request,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z0-9_.-]+$")] = None,
    severity: Annotated[int | None, Query(ge=0, le=10, description="minimum severity")] = None,
    template_id: Annotated[
        str | None, Query(max_length=128, pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)*$", description="event type")
    ] = None,
    entity: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=256, description="substring of the event")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first. ``source`` is the wire format the event came in (oisp, aop, otlp...);
    ``template_id`` is the event type (a ``family.*`` prefix works)."""
    query = event_store.EventQuery(
        limit=limit,
        offset=(page - 1) * limit,
        event_type=template_id,
        since=parse_since(since, "since"),
        until=parse_since(until, "until"),
        source_format=source,
        min_severity=severity,
        text=q,
    )
    rows, total, _entity_id = await run_in_threadpool(search, request.app.state.aw.engine, query, entity)
    return {"events": rows, "meta": {"total": total, "page": page, "limit": limit}}
