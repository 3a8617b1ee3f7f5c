"""``/api/v1/ueba``: AiSOC's UEBA routes: the anomalies raised, the baselines learnt (one can
be reset, after which the entity warms up again from its next event) and aggregate counts.

Every route answers 503 while ``ueba.enabled`` is false. Reads need ``alerts:read``; a reset
needs ``alerts:write``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import require
from agentwatch.store.keyset import encode_cursor
from agentwatch.ueba import anomalies, store
from agentwatch.ueba.detector import detector_of
from agentwatch.ueba.view import baseline_json, enabled, timestamp, uuid_of

router = APIRouter(prefix="/api/v1/ueba", tags=["ueba"])

Reason = Literal["new_source", "new_template", "rare_hour", "burst"]
EntityType = Literal["host", "user", "agent", "process", "model", "ip", "domain", "file"]
SOURCE = r"^[a-z0-9_.-]+$"  # as GET /api/v1/events' ``source``
Cursor = Annotated[str | None, Query(min_length=1, max_length=512, description="next_cursor of the page before")]


def _cursor(text: str | None) -> tuple[float, str] | None:
    return keyset_position(text, 36)


@router.get(
    "/anomalies",
    dependencies=[
        require("alerts:read"),
        only_query("entity_id", "reason", "source", "min_score", "since", "until", "limit", "cursor"),
    ],
)
async def list_anomalies(
    request: Request,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=64, description="an entity's UUID")] = None,
    reason: Reason | None = None,
    source: Annotated[str | None, Query(min_length=1, max_length=64, pattern=SOURCE)] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    since: Annotated[str | None, Query(min_length=1, max_length=64, description="RFC 3339, event time")] = None,
    until: Annotated[str | None, Query(min_length=1, max_length=64, description="RFC 3339, event time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Anomalies, newest (event time) first; ``next_cursor`` goes on after the last one."""
    aw = request.app.state.aw
    enabled(aw)
    q = anomalies.AnomalyQuery(
        entity_id=uuid_of(entity_id, "entity_id") if entity_id is not None else None,
        reason=reason,
        source=source,
        min_score=min_score,
        since=timestamp(since, "since"),
        until=timestamp(until, "until"),
        limit=limit,
        cursor=_cursor(cursor),
    )
    if q.since is not None and q.until is not None and q.since >= q.until:
        raise InvalidRequest("until: must be after since")
    rows, total, nxt = await run_in_threadpool(anomalies.search, aw.engine, q)
    return {"anomalies": rows, "total": total, "next_cursor": encode_cursor(*nxt) if nxt else None}


@router.get("/anomalies/{anomaly_id}", dependencies=[require("alerts:read"), only_query()])
async def get_anomaly(request: Request, anomaly_id: str) -> dict[str, Any]:
    aw = request.app.state.aw
    enabled(aw)
    aid = uuid_of(anomaly_id, "anomaly_id")
    found = await run_in_threadpool(anomalies.get, aw.engine, aid)
    if found is None:
        raise NotFound("anomaly not found", {"anomaly_id": aid})
    return found


@router.get(
    "/baselines",
    dependencies=[require("alerts:read"), only_query("entity_type", "status", "limit", "cursor")],
)
async def list_baselines(
    request: Request,
    entity_type: EntityType | None = None,
    status: Literal["active", "warming_up"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Baselines, most recently active (event time) first, as of now (the changed ones are
    written to the store first, at most once a second)."""
    aw = request.app.state.aw
    s = enabled(aw)
    det = detector_of(aw)
    await run_in_threadpool(det.persist_for_read)
    q = store.BaselineQuery(s.warmup_events, s.warmup_span_s, entity_type, status, limit, _cursor(cursor))
    page, total, nxt = await run_in_threadpool(store.search, aw.engine, q, s.top_k)
    return {
        "baselines": [baseline_json(b, s) for b in page],
        "total": total,
        "next_cursor": encode_cursor(*nxt) if nxt else None,
    }


@router.get("/baselines/{entity_id}", dependencies=[require("alerts:read"), only_query()])
async def get_baseline(request: Request, entity_id: str) -> dict[str, Any]:
    """One entity's baseline, whether still warming up (``status``) or active."""
    aw = request.app.state.aw
    s = enabled(aw)
    eid = uuid_of(entity_id, "entity_id")
    found = await run_in_threadpool(detector_of(aw).get, eid)
    if found is None:
        raise NotFound("no baseline for this entity", {"entity_id": eid})
    return baseline_json(found, s)


@router.delete("/baselines/{entity_id}", status_code=204, dependencies=[require("alerts:write"), only_query()])
async def reset_baseline(request: Request, entity_id: str) -> Response:
    """Forget the entity's baseline: it learns afresh, warm-up first, from its next event."""
    aw = request.app.state.aw
    enabled(aw)
    eid = uuid_of(entity_id, "entity_id")
    if not await run_in_threadpool(detector_of(aw).reset, eid):
        raise NotFound("no baseline for this entity", {"entity_id": eid})
    return Response(status_code=204)


@router.get("/stats", dependencies=[require("alerts:read"), only_query()])
async def stats(request: Request) -> dict[str, Any]:
    """Baselines held by this node and stored, and counts of the stored anomalies."""
    aw = request.app.state.aw
    s = enabled(aw)
    det = detector_of(aw)
    await run_in_threadpool(det.persist_for_read)
    active = store.BaselineQuery(s.warmup_events, s.warmup_span_s, status="active", limit=1)
    _, warmed, _ = await run_in_threadpool(store.search, aw.engine, active, s.top_k)
    every = store.BaselineQuery(s.warmup_events, s.warmup_span_s, limit=1)
    _, stored, _ = await run_in_threadpool(store.search, aw.engine, every, s.top_k)
    found = await run_in_threadpool(anomalies.stats, aw.engine)
    return {
        "baselines": {
            "stored": stored,
            "active": warmed,
            "warming_up": stored - warmed,
            "node": {**det.counts(), "max_entities": s.max_entities},
        },
        "anomalies": found,
        "settings": {
            "entity_types": s.entity_types,
            "warmup_events": s.warmup_events,
            "warmup_span_s": s.warmup_span_s,
            "score_threshold": s.score_threshold,
        },
    }
