"""Seerflow's UEBA routes: ``GET /api/v1/entities/{entity_uuid}/baseline`` and
``GET /api/v1/anomaly/timeline``.

The baseline answers 503 while UEBA is disabled, 404 for an entity no stored event named,
404 for an entity of a type without baselines or none learnt yet, and 404 with
``status: warming_up`` (and the warm-up's progress) while the entity is inside its warm-up.

The timeline buckets the anomalies of the ``range`` ending at ``until`` (default now;
replayed events are placed by their event time, so a past window is asked with ``until``)
into buckets of ``resolution``, aligned on multiples of it since the epoch; the last bucket
holds ``until``. At most :data:`MAX_BUCKETS` buckets.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import InvalidRequest, NotFound, error_body
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import require
from agentwatch.entities import search
from agentwatch.ueba import anomalies
from agentwatch.ueba.detector import detector_of
from agentwatch.ueba.view import baseline_json, enabled, status, timestamp, uuid_of, warmup

router = APIRouter(prefix="/api/v1", tags=["ueba"])

RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86_400, "7d": 7 * 86_400}
RESOLUTIONS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
MAX_BUCKETS = 2016  # 7d at 5m
SOURCE = r"^[a-z0-9_.-]+$"
# the window of a ``until`` outside these would begin or end outside the years 1-9999 that times are shown in
EARLIEST, LATEST = 604_800.0, 253_402_128_000.0


@router.get("/entities/{entity_uuid}/baseline", dependencies=[require("alerts:read"), only_query()])
async def entity_baseline(request: Request, entity_uuid: str) -> Any:
    """The entity's UEBA baseline: top sources and templates, hour-of-day distribution, volume EMA."""
    aw = request.app.state.aw
    s = enabled(aw)
    eid = uuid_of(entity_uuid, "entity_uuid")
    if await run_in_threadpool(search.get, aw.engine, eid) is None:
        raise NotFound("entity not found", {"entity_uuid": eid})
    found = await run_in_threadpool(detector_of(aw).get, eid)
    if found is None:
        raise NotFound("no baseline for this entity", {"entity_uuid": eid, "status": "no_baseline"})
    if status(found, s) == "warming_up":
        details = {"entity_uuid": eid, "status": "warming_up", "warmup": warmup(found, s)}
        body = error_body("NOT_FOUND", "the entity's baseline is warming up", details)
        return JSON({**body, "status": "warming_up"}, 404)
    return baseline_json(found, s)


@router.get(
    "/anomaly/timeline", dependencies=[require("alerts:read"), only_query("range", "resolution", "source", "until")]
)
async def anomaly_timeline(
    request: Request,
    range_: Annotated[Literal["1h", "6h", "24h", "7d"], Query(alias="range", description="window length")] = "24h",
    resolution: Annotated[Literal["1m", "5m", "15m", "1h"], Query(description="bucket size")] = "1h",
    source: Annotated[str | None, Query(min_length=1, max_length=64, pattern=SOURCE, description="wire format")] = None,
    until: Annotated[str | None, Query(min_length=1, max_length=64, description="RFC 3339 window end")] = None,
) -> dict[str, Any]:
    """Anomalies per bucket: their count, highest and mean score, and the alerts they raised."""
    aw = request.app.state.aw
    enabled(aw)
    span, step = RANGES[range_], RESOLUTIONS[resolution]
    buckets = span // step
    if buckets > MAX_BUCKETS:
        raise InvalidRequest(f"resolution: {resolution} over {range_} makes {buckets} buckets (at most {MAX_BUCKETS})")
    end_at = timestamp(until, "until")
    if end_at is not None and not EARLIEST <= end_at <= LATEST:
        raise InvalidRequest("until: must be between 1970-01-08T00:00:00Z and 9999-12-30T00:00:00Z")
    moment = time.time() if end_at is None else end_at
    end = (math.floor(moment / step) + 1) * step
    start = end - buckets * step
    series = await run_in_threadpool(anomalies.timeline, aw.engine, start, step, buckets, source)
    return {
        "range": range_,
        "resolution": resolution,
        "source": source,
        "start": series[0]["ts"],
        "buckets": series,
        "totals": {
            "anomalies": sum(b["anomalies"] for b in series),
            "max_score": max((b["max_score"] for b in series if b["max_score"] is not None), default=None),
        },
    }
