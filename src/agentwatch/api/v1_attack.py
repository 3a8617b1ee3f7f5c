"""``/api/v1/attack/coverage`` (Seerflow): the ATT&CK matrix of the enabled rules with the
number of alerts per technique in a window (see :mod:`agentwatch.detect.coverage`).

The matrix reads every enabled rule and up to 50,000 alerts, so besides the request budget
of the access layer each client has a budget of its own for this route: 10 requests a
minute, counted by the access layer's counters (shared through Redis when configured)
whenever its rate limits are on.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, InvalidRequest, Unavailable
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.detect import coverage
from agentwatch.events.model import FIRST_TS, iso

router = APIRouter(prefix="/api/v1/attack", tags=["attack"])

DEFAULT_WINDOW_S = 30 * 86400
COVERAGE_LIMIT = 10  # requests per client and window
COVERAGE_WINDOW_S = 60


async def coverage_budget(request: Request, response: Response) -> None:
    """Charge the request to its client's coverage budget; 429 with Retry-After when spent.
    Runs after the route guard, so the principal is known. The answer's ``X-RateLimit-*``
    headers tell this budget, the tighter one (the access layer then leaves them)."""
    aw = request.app.state.aw
    limits = aw.settings.auth.rate_limit
    service = getattr(aw, "auth", None)
    if service is None or not (aw.settings.auth.enabled and limits.enabled):
        return  # as for every other budget: no rate limits without authentication
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.kind != "anonymous":
        key = f"coverage:{principal.kind}:{principal.id}"
    else:
        key = f"coverage:addr:{request.client.host if request.client else ''}"
    decision = await service.counter.hit(key, COVERAGE_LIMIT, COVERAGE_WINDOW_S)
    headers = {name.decode(): value.decode() for name, value in decision.headers()}
    if not decision.allowed:
        raise ApiError(
            f"rate limit: {COVERAGE_LIMIT} requests per {COVERAGE_WINDOW_S}s to /api/v1/attack/coverage exceeded, "
            "retry later",
            status=429,
            headers=headers,
        )
    response.headers.update(headers)


def window(since: str | None, until: str | None) -> tuple[float, float]:
    """[since, until] in epoch seconds: 30 days up to ``until`` (default: now)."""
    start = parse_since(since, "since")
    end = parse_since(until, "until")
    if end is None:
        end = time.time()
    if start is None:  # not before the first day a timestamp can name (the answer shows it)
        start = max(FIRST_TS, end - DEFAULT_WINDOW_S)
    if start > end:
        raise InvalidRequest(f"since: must not be after until ({iso(end)})")
    return start, end


@router.get(
    "/coverage",
    dependencies=[
        require("alerts:read", also={"rules:read": "the matrix lists the ids of rules that never fired"}),
        only_query("since", "until"),
        Depends(coverage_budget),
    ],
)
async def attack_coverage(
    request: Request,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """Tactics in matrix order, each with the techniques its enabled rules cover or its alerts carry."""
    start, end = window(since, until)
    comp = request.app.state.aw.components.get("detection")
    if comp is None:
        raise Unavailable("detection: the detection engine is not running")
    doc = await run_in_threadpool(_matrix, comp.engine, request.app.state.aw.engine, start, end)
    return {"window": {"since": iso(start), "until": iso(end)}, **doc}


def _matrix(detection: Any, db: Any, since: float, until: float) -> dict[str, Any]:
    """In a worker thread: the rules may still be loading, and the alerts are read from the store."""
    return coverage.build(detection.rules(), db, since, until)
