"""``/api/v1/entity-risk``: AiSOC's risk-based alerting: entities by time-decayed risk score
(:mod:`agentwatch.entities.scores`), and one entity's score with the alerts that make it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.api.text_rules import UNPRINTABLE
from agentwatch.detect.queries import entity_ids_for
from agentwatch.entities import scores
from agentwatch.events.model import iso

router = APIRouter(prefix="/api/v1", tags=["entities"])


async def _moment(request: Request, at: str | None) -> float | None:
    """``at`` in epoch seconds, else the latest alert's event time (None: no alert at all)."""
    moment = parse_since(at, "at")
    if moment is not None:
        return moment
    return await run_in_threadpool(scores.reference_time, request.app.state.aw.engine)


def _meta(at: float | None, half_life: float, truncated: bool, **more: Any) -> dict[str, Any]:
    return {"at": iso(at) if at is not None else None, "half_life_s": half_life, "alerts_truncated": truncated, **more}


@router.get("/entity-risk", dependencies=[require("alerts:read"), only_query("limit", "at")])
async def top_entities(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    at: Annotated[str | None, Query(max_length=64, description="RFC 3339; default: the latest alert's time")] = None,
) -> dict[str, Any]:
    """Entities by risk score, highest first."""
    aw = request.app.state.aw
    half_life = aw.settings.detection.risk_half_life_s
    moment = await _moment(request, at)
    if moment is None:
        return {"entities": [], "meta": _meta(None, half_life, False, limit=limit)}
    found, truncated = await run_in_threadpool(scores.top, aw.engine, moment, half_life, limit)
    return {"entities": found, "meta": _meta(moment, half_life, truncated, limit=limit)}


@router.get("/entity-risk/{entity:path}", dependencies=[require("alerts:read"), only_query("at")])
async def entity_risk(
    request: Request,
    entity: str,
    at: Annotated[str | None, Query(max_length=64, description="RFC 3339; default: the latest alert's time")] = None,
) -> dict[str, Any]:
    """One entity (its UUID, or a value: a host name, an address, a user) with its score and the
    alerts that weigh most in it (at most 50)."""
    if not 1 <= len(entity) <= 512 or UNPRINTABLE.search(entity):
        raise InvalidRequest("entity: must be an entity UUID or a value of 1-512 printable characters")
    aw = request.app.state.aw
    half_life = aw.settings.detection.risk_half_life_s
    moment = await _moment(request, at)
    ids = entity_ids_for(entity)
    best: dict[str, Any] | None = None
    truncated = False
    if moment is not None:
        best, truncated = await run_in_threadpool(scores.detail, aw.engine, ids, moment, half_life)
    if best is None:  # no alert names it: an entity the index knows scores 0
        known = await run_in_threadpool(scores.entity_rows, aw.engine, ids)
        if not known:
            raise NotFound("no entity of this id or value has events or alerts", {"entity": entity[:512]})
        eid = next(i for i in ids if i in known)
        best = scores.unscored(eid, known[eid])
    return {"entity": best, "meta": _meta(moment, half_life, truncated)}
