"""``/api/v1/alerts``: search, detail and TP/FP feedback (Seerflow), with AiSOC's cursor paging.

``GET /api/v1/alerts`` answers with both documented shapes: Seerflow's page/limit
with ``meta {total, page, limit}`` and AiSOC's ``cursor`` with ``next_cursor``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.model import ALERT_TYPES, STATUSES
from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.detect import queries

router = APIRouter(prefix="/api/v1", tags=["alerts"])

ALERT_ID_RE = re.compile(r"[0-9A-Za-z-]{1,64}")  # fullmatch: "$" would let a final newline through


def parse_types(value: str | None) -> list[str]:
    if not value:
        return []
    types = [t.strip().lower() for t in value.split(",") if t.strip()]
    for t in types:
        if t not in ALERT_TYPES:
            raise InvalidRequest(f"type: must be one of {', '.join(ALERT_TYPES)} (comma-separated)")
    return types


ALERT_FILTERS = ("since", "until", "type", "severity", "entity", "tactic", "technique", "status", "rule_id")


@router.get(
    "/alerts",
    dependencies=[
        require("alerts:read"),
        only_query(*ALERT_FILTERS, "page", "limit", "cursor"),
    ],
)
async def list_alerts(
    request: Request,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=256)] = None,
    severity: Annotated[int | None, Query(ge=0, le=10, description="minimum severity")] = None,
    entity: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    tactic: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z _-]+$")] = None,
    technique: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.]+$")] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    rule_id: Annotated[str | None, Query(max_length=256)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Newest first (by last_seen); filters combine with AND."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status: must be one of {', '.join(STATUSES)}")
    q = queries.AlertQuery(
        since=parse_since(since, "since"),
        until=parse_since(until, "until"),
        types=parse_types(type),
        min_severity=severity,
        entity=entity,
        tactic=tactic,
        technique=technique,
        status=status,
        rule_id=rule_id,
        page=page,
        limit=limit,
    )
    if cursor is not None:
        try:
            q.cursor = queries.decode_cursor(cursor)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    rows, total, nxt = await run_in_threadpool(queries.list_alerts, request.app.state.aw.engine, q)
    return {"alerts": rows, "meta": {"total": total, "page": page, "limit": limit}, "next_cursor": nxt}


def _check_id(alert_id: str) -> None:
    if ALERT_ID_RE.fullmatch(alert_id) is None:
        raise InvalidRequest("alert_id: must be 1-64 letters, digits or dashes")


@router.get("/alerts/{alert_id}", dependencies=[require("alerts:read")])
async def get_alert(request: Request, alert_id: str) -> dict[str, Any]:
    """One alert with its contributing events and a feedback tally."""
    _check_id(alert_id)
    doc = await run_in_threadpool(queries.get_alert, request.app.state.aw.engine, alert_id)
    if doc is None:
        raise NotFound("alert not found", {"alert_id": alert_id})
    return doc


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: Literal["tp", "fp"]
    note: str = Field("", max_length=4000)
    origin: str = Field("api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


FEEDBACK_BODY_BYTES = 64 * 1024


def _who(request: Request) -> str:
    """The credential behind a verdict as ``kind:id`` (``user:...``, ``api_key:...``): never an
    API key's name, which its creator chooses freely (a key named like the admin)."""
    principal = getattr(request.state, "principal", None)
    return f"{principal.kind}:{principal.id}" if principal is not None else ""


@router.post(
    "/alerts/{alert_id}/feedback",
    status_code=204,
    dependencies=[require("alerts:write")],
    openapi_extra=json_body_doc(Feedback),
)
async def add_feedback(request: Request, alert_id: str) -> Response:
    """Record a true/false positive verdict; 204, or 404 when the alert does not exist."""
    body = await read_model(request, Feedback, FEEDBACK_BODY_BYTES)
    _check_id(alert_id)
    who = _who(request)
    ok = await run_in_threadpool(
        queries.add_feedback, request.app.state.aw.engine, alert_id, body.feedback, body.note, body.origin, who
    )
    if not ok:
        raise NotFound("alert not found", {"alert_id": alert_id})
    return Response(status_code=204)


@router.get("/alerts/{alert_id}/feedback", dependencies=[require("alerts:read"), only_query("page", "limit")])
async def list_feedback(
    request: Request,
    alert_id: str,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The alert's feedback audit log, newest first."""
    _check_id(alert_id)
    engine = request.app.state.aw.engine
    if not await run_in_threadpool(queries.alert_exists, engine, alert_id):
        raise NotFound("alert not found", {"alert_id": alert_id})
    rows, total = await run_in_threadpool(queries.list_feedback, engine, alert_id, limit, (page - 1) * limit)
    return {"feedback": rows, "meta": {"total": total, "page": page, "limit": limit}}
