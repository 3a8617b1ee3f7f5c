"""``/api/v1/entities``: Seerflow's entity search, timeline and risk history over the entity
index (``agentwatch.entities``). An entity's UEBA ``/baseline`` is served by ``agentwatch.ueba``."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.api.v1_events import event_json
from agentwatch.entities import risk, search, timeline

router = APIRouter(prefix="/api/v1", tags=["entities"])

MAX_INT64 = 2**63 - 1
MAX_UUID_TEXT = 45  # the longest form uuid.UUID reads: "urn:uuid:" and 36 characters
SOURCE_PATTERN = r"^[a-z0-9_.-]+$"  # as GET /api/v1/events' ``source``


def _seconds(ns: int | None, up: bool) -> float | None:
    """A bound in ns as event time in seconds, rounded inward to a whole microsecond (up for
    the start, down for the end). Event times are kept as floats of seconds, which at today's
    dates tell apart only about 240 ns, and shown to the microsecond: ``ns / 1e9`` could land
    on the float of an event a few hundred ns outside the window. A whole microsecond is the
    same float as an event time read at that microsecond."""
    if ns is None:
        return None
    us = -(-ns // 1000) if up else ns // 1000
    return us / 1_000_000


def _entity_id(text: str) -> str:
    eid = search.as_uuid(text) if len(text) <= MAX_UUID_TEXT else None
    if eid is None:
        raise InvalidRequest("entity_uuid: must be a UUID")
    return eid


async def _known(request: Request, entity_uuid: str) -> dict[str, Any]:
    eid = _entity_id(entity_uuid)
    entity = await run_in_threadpool(search.get, request.app.state.aw.engine, eid)
    if entity is None:
        raise NotFound("entity not found", {"entity_uuid": eid})
    return entity


@router.get("/entities/search", dependencies=[require("events:read"), only_query("q", "limit")])
async def search_entities(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=256, description="free text, or an entity UUID")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Entities whose value matches ``q`` (or whose id it is), best match first."""
    found = await run_in_threadpool(search.search, request.app.state.aw.engine, q, limit)
    return {"entities": found, "meta": {"q": q, "limit": limit, "count": len(found)}}


@router.get(
    "/entities/{entity_uuid}/timeline",
    dependencies=[
        require("events:read"),
        only_query("start_ns", "end_ns", "source_type", "severity_min", "limit"),
    ],
)
async def entity_timeline(
    request: Request,
    entity_uuid: str,
    start_ns: Annotated[int | None, Query(ge=0, le=MAX_INT64, description="event time, ns, inclusive")] = None,
    end_ns: Annotated[int | None, Query(ge=0, le=MAX_INT64, description="event time, ns, inclusive")] = None,
    source_type: Annotated[str | None, Query(min_length=1, max_length=32, pattern=SOURCE_PATTERN)] = None,
    severity_min: Annotated[int | None, Query(ge=0, le=10)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """The entity's events in the window, newest first, and the entities they name besides."""
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise InvalidRequest("start_ns: must not be after end_ns")
    entity = await _known(request, entity_uuid)
    q = timeline.TimelineQuery(
        entity_id=entity["id"],
        since=_seconds(start_ns, up=True),
        until=_seconds(end_ns, up=False),
        source_format=source_type,
        min_severity=severity_min,
        limit=limit,
    )
    rows, more = await run_in_threadpool(timeline.event_rows, request.app.state.aw.engine, q)
    return {
        "entity": entity,
        "events": [event_json(r) for r in rows],
        "related": timeline.related(rows, entity["id"]),
        "meta": {"start_ns": start_ns, "end_ns": end_ns, "limit": limit, "count": len(rows), "more": more},
    }


@router.get(
    "/entities/{entity_uuid}/risk-history",
    dependencies=[
        require("events:read", also={"alerts:read": "the risk history is made of the entity's alerts"}),
        only_query("range", "resolution"),
    ],
)
async def entity_risk_history(
    request: Request,
    entity_uuid: str,
    range: Annotated[str, Query(max_length=8)] = "24h",  # noqa: A002 (the documented name)
    resolution: Annotated[str, Query(max_length=8)] = "1h",
) -> dict[str, Any]:
    """Per bucket, the sum of the severities of the alerts naming the entity, and their count."""
    if range not in risk.RANGES:
        raise InvalidRequest(f"range: must be one of {', '.join(risk.RANGES)}")
    if resolution not in risk.RESOLUTIONS:
        raise InvalidRequest(f"resolution: must be one of {', '.join(risk.RESOLUTIONS)}")
    if risk.bucket_count(range, resolution) > risk.MAX_BUCKETS:
        raise InvalidRequest(f"resolution: {range} at {resolution} is more than {risk.MAX_BUCKETS} buckets")
    entity = await _known(request, entity_uuid)
    engine = request.app.state.aw.engine
    history = await run_in_threadpool(risk.risk_history, engine, entity["id"], range, resolution, time.time())
    return {"entity": entity, **history}
