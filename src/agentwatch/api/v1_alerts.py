"""``/api/v1/alerts``: search, detail and TP/FP feedback (Seerflow), with AiSOC's cursor paging
and its triage routes (update, assign, delete).

``GET /api/v1/alerts`` answers with both documented shapes: Seerflow's page/limit
with ``meta {total, page, limit}`` and AiSOC's ``cursor`` with ``next_cursor``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts import recorder
from agentwatch.alerts.model import ALERT_TYPES, MAX_ASSIGNEE, STATUSES, Status
from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import assignee_filter, keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import ALERT_ID_RE, assignee_name
from agentwatch.detect import queries

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def parse_types(value: str | None) -> list[str]:
    if not value:
        return []
    types = [t.strip().lower() for t in value.split(",") if t.strip()]
    for t in types:
        if t not in ALERT_TYPES:
            raise InvalidRequest(f"type: must be one of {', '.join(ALERT_TYPES)} (comma-separated)")
    return types


ALERT_FILTERS = (
    "since",
    "until",
    "type",
    "severity",
    "entity",
    "tactic",
    "technique",
    "status",
    "rule_id",
    "assignee",
    "unassigned",
)


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
    assignee: Annotated[str | None, Query(min_length=1, max_length=MAX_ASSIGNEE)] = None,
    unassigned: Annotated[bool | None, Query(description="true: only alerts nobody is assigned to")] = None,
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
        assignee=assignee_filter(assignee, unassigned),
        unassigned=bool(unassigned),
        page=page,
        limit=limit,
    )
    q.cursor = keyset_position(cursor, 64)
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
    who = principal_name(request)
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


# -- triage: status, assignee, deletion ----------------------------------------------------


class AlertPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    assignee: str | None = Field(None, min_length=1, max_length=MAX_ASSIGNEE, description="null: unassigned")

    _check_assignee = field_validator("assignee")(assignee_name)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str = Field(min_length=1, max_length=MAX_ASSIGNEE)

    _check_assignee = field_validator("assignee")(assignee_name)


TRIAGE_BODY_BYTES = 4 * 1024  # two short fields; room for escaped characters


async def _change(request: Request, alert_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes``, name them in the request's audit row, answer the alert as GET does."""
    engine = request.app.state.aw.engine
    if not await run_in_threadpool(recorder.change_alert, engine, alert_id, changes):
        raise NotFound("alert not found", {"alert_id": alert_id})
    request.state.audit_details = {"changed": sorted(changes)}  # names only, as every audit row
    doc = await run_in_threadpool(queries.get_alert, engine, alert_id)
    if doc is None:  # deleted right after the change
        raise NotFound("alert not found", {"alert_id": alert_id})
    # live clients (/api/v1/ws, AOP /stream) see the change as they see a repeat: the alert again
    request.app.state.aw.hub.publish("alert", {k: v for k, v in doc.items() if k not in ("events", "feedback")})
    return doc


@router.patch(
    "/alerts/{alert_id}",
    dependencies=[require("alerts:write"), only_query()],
    openapi_extra=json_body_doc(AlertPatch),
)
async def patch_alert(request: Request, alert_id: str) -> dict[str, Any]:
    """Set the alert's ``status`` and/or ``assignee`` (null unassigns); answers the alert."""
    body = await read_model(request, AlertPatch, TRIAGE_BODY_BYTES)
    _check_id(alert_id)
    given = body.model_fields_set
    if not given:
        raise InvalidRequest("body: give status and/or assignee")
    if "status" in given and body.status is None:
        raise InvalidRequest(f"status: must be one of {', '.join(STATUSES)}, not null")
    return await _change(request, alert_id, {name: getattr(body, name) for name in given})


@router.post(
    "/alerts/{alert_id}/assign",
    dependencies=[require("alerts:write"), only_query()],
    openapi_extra=json_body_doc(Assignment),
)
async def assign_alert(request: Request, alert_id: str) -> dict[str, Any]:
    """Assign the alert to an analyst (``PATCH`` with ``assignee: null`` unassigns); answers the alert."""
    body = await read_model(request, Assignment, TRIAGE_BODY_BYTES)
    _check_id(alert_id)
    return await _change(request, alert_id, {"assignee": body.assignee})


@router.delete("/alerts/{alert_id}", status_code=204, dependencies=[require("alerts:write"), only_query()])
async def delete_alert(request: Request, alert_id: str) -> Response:
    """Delete the alert with its feedback and cached explanation; 204, or 404 when unknown."""
    _check_id(alert_id)
    removed = await run_in_threadpool(recorder.delete_alert, request.app.state.aw.engine, alert_id)
    if removed is None:
        raise NotFound("alert not found", {"alert_id": alert_id})
    request.state.audit_details = {"deleted": removed}
    # after the commit, and only for an alert that was there: live clients drop it from view
    request.app.state.aw.hub.publish("alert_deleted", {"alert_id": alert_id})
    return Response(status_code=204)
