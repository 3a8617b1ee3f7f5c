"""Operations: Prometheus ``/metrics`` and the liveness probe ``/healthz``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentwatch.api.security import PUBLIC, require

router = APIRouter(tags=["operations"])


@router.get("/metrics", dependencies=[require("metrics:read")], response_class=Response)
def metrics(request: Request) -> Response:
    aw = request.app.state.aw
    aw.metrics.set_gauges(aw.pipeline.pending, aw.hub.subscribers)
    return Response(generate_latest(aw.metrics.exposed()), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", dependencies=[require(PUBLIC)])
def healthz() -> dict[str, str]:
    return {"status": "ok"}
