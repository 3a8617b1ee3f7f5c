"""``/api/v1/cases`` (AiSOC "Cases & Response"): list, create, detail, change, close, comment
and timeline.

Reading a case needs ``alerts:read`` (a case is made of alerts), every write ``cases:write``;
the writes that answer the whole case (create, change, close) need ``alerts:read`` as well.
``DELETE`` closes a case and keeps it, with its comments and timeline, for the audit trail.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.model import MAX_ASSIGNEE
from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import Conflict, InvalidRequest, NotFound
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import assignee_filter, keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import ALERT_ID_RE, assignee_name, printable_name, printable_title
from agentwatch.soc.cases import history, store

router = APIRouter(prefix="/api/v1", tags=["cases"])

CaseStatus = Literal["open", "investigating", "resolved", "closed"]
CASE_STATUSES: tuple[str, ...] = get_args(CaseStatus)
# A case id as this server makes them (uuid4, lowercase); fullmatch, ASCII only
CASE_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)

# Bodies hold their text limits written the longest way JSON allows: a client escaping every
# non-ASCII character sends an emoji as 12 bytes (a surrogate pair of \uXXXX escapes).
CASE_BODY_BYTES = 256 * 1024  # a 10,000-character description, 32 tags and 1,000 alert ids
NOTE_BODY_BYTES = 128 * 1024  # a comment or a timeline entry
MAX_TEXT = 10_000


def _text_ok(value: str) -> str:
    # free text keeps its newlines and tabs; NUL would be stored differently on PostgreSQL
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _alert_id_ok(value: str) -> str:
    if ALERT_ID_RE.fullmatch(value) is None:
        raise ValueError("must be 1-64 letters, digits or dashes")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))  # a repeat adds nothing; the first place is kept


Title = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(printable_title)]
Description = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_text_ok)]
Severity = Annotated[int, Field(ge=0, le=10, strict=True)]
Assignee = Annotated[str, Field(min_length=1, max_length=MAX_ASSIGNEE), AfterValidator(assignee_name)]
Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]
Tags = Annotated[list[Tag], Field(max_length=32), AfterValidator(_unique)]
AlertId = Annotated[str, AfterValidator(_alert_id_ok)]
AlertIds = Annotated[list[AlertId], Field(max_length=1000), AfterValidator(_unique)]


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    description: Description = ""
    severity: Severity = 5
    status: CaseStatus = "open"
    assignee: Assignee | None = None
    tags: Tags = []
    alert_ids: AlertIds = []


class CasePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title | None = None
    description: Description | None = None
    severity: Severity | None = None
    status: CaseStatus | None = None
    assignee: Assignee | None = Field(None, description="null: unassigned")
    tags: Tags | None = None
    alert_ids: AlertIds | None = Field(None, description="replaces the linked alerts")


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_text_ok)]

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title
    description: Description = ""
    ts: str | None = Field(None, max_length=64, description="RFC 3339; absent or null: now")
    kind: Literal["note", "evidence", "action"] = "note"


# Writes that answer the whole case (create, change, close) also need ``alerts:read``: the answer
# holds the case and a summary of each linked alert, which ``cases:write`` alone must not read
# (linking an alert to a new case would show any alert).
WRITES_ANSWERING_THE_CASE = require("cases:write", also={"alerts:read": "a write answers the case"})


def _case_id(case_id: str) -> str:
    if CASE_ID_RE.fullmatch(case_id) is None:
        raise InvalidRequest("case_id: must be a case id (a UUID, lowercase hex digits)")
    return case_id


def _unknown_alerts(exc: store.UnknownAlerts) -> InvalidRequest:
    shown = ", ".join(exc.ids[:10]) + (f" and {len(exc.ids) - 10} more" if len(exc.ids) > 10 else "")
    return InvalidRequest(f"alert_ids: no such alert: {shown}", {"alert_ids": exc.ids})


async def _answer(request: Request, case_id: str) -> dict[str, Any]:
    doc = await run_in_threadpool(store.get_case, request.app.state.aw.engine, case_id)
    if doc is None:  # cases are never deleted: only an id never made gets here
        raise NotFound("case not found", {"case_id": case_id})
    return doc


@router.get(
    "/cases",
    dependencies=[
        require("alerts:read"),
        only_query("status", "assignee", "unassigned", "severity", "alert_id", "limit", "cursor"),
    ],
)
async def list_cases(
    request: Request,
    status: Annotated[str | None, Query(max_length=32)] = None,
    assignee: Annotated[str | None, Query(min_length=1, max_length=MAX_ASSIGNEE)] = None,
    unassigned: Annotated[bool | None, Query(description="true: only cases with no assignee")] = None,
    severity: Annotated[int | None, Query(ge=0, le=10, description="minimum severity")] = None,
    alert_id: Annotated[str | None, Query(max_length=64, description="cases linking this alert")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Newest first (by creation); filters combine with AND; ``next_cursor`` pages on."""
    if status is not None and status not in CASE_STATUSES:
        raise InvalidRequest(f"status: must be one of {', '.join(CASE_STATUSES)}")
    if alert_id is not None and ALERT_ID_RE.fullmatch(alert_id) is None:
        raise InvalidRequest("alert_id: must be 1-64 letters, digits or dashes")
    assignee = assignee_filter(assignee, unassigned)
    q = store.CaseQuery(
        status=status,
        assignee=assignee,
        unassigned=bool(unassigned),
        min_severity=severity,
        alert_id=alert_id,
        limit=limit,
    )
    q.cursor = keyset_position(cursor, 36)
    rows, total, nxt = await run_in_threadpool(store.list_cases, request.app.state.aw.engine, q)
    return {"cases": rows, "meta": {"total": total, "limit": limit}, "next_cursor": nxt}


@router.post(
    "/cases",
    status_code=201,
    dependencies=[WRITES_ANSWERING_THE_CASE, only_query()],
    openapi_extra=json_body_doc(CaseIn),
)
async def create_case(request: Request) -> dict[str, Any]:
    """Open a case; 201 with the case as ``GET /api/v1/cases/{case_id}`` answers it."""
    body = await read_model(request, CaseIn, CASE_BODY_BYTES)
    try:
        case_id = await run_in_threadpool(
            store.create_case, request.app.state.aw.engine, body.model_dump(), principal_name(request)
        )
    except store.UnknownAlerts as exc:
        raise _unknown_alerts(exc) from None
    request.state.audit_details = {"created": case_id, "fields": sorted(body.model_fields_set)}
    return await _answer(request, case_id)


@router.get("/cases/{case_id}", dependencies=[require("alerts:read"), only_query()])
async def get_case(request: Request, case_id: str) -> dict[str, Any]:
    """The case with its comments, its timeline and a summary of each linked alert."""
    return await _answer(request, _case_id(case_id))


async def _change(request: Request, case_id: str, changes: dict[str, Any], title: str = "") -> dict[str, Any]:
    engine = request.app.state.aw.engine
    try:
        changed = await run_in_threadpool(store.update_case, engine, case_id, changes, principal_name(request), title)
    except store.UnknownAlerts as exc:
        raise _unknown_alerts(exc) from None
    if changed is None:
        raise NotFound("case not found", {"case_id": case_id})
    request.state.audit_details = {"changed": changed}  # names only, as every audit row
    return await _answer(request, case_id)


@router.patch(
    "/cases/{case_id}",
    dependencies=[WRITES_ANSWERING_THE_CASE, only_query()],
    openapi_extra=json_body_doc(CasePatch),
)
async def patch_case(request: Request, case_id: str) -> dict[str, Any]:
    """Change any of the case's fields (``assignee: null`` unassigns, ``alert_ids`` replaces the
    linked alerts); answers the case. A change is also a timeline entry naming the fields."""
    body = await read_model(request, CasePatch, CASE_BODY_BYTES)
    case_id = _case_id(case_id)
    given = body.model_fields_set
    if not given:
        raise InvalidRequest(f"body: give at least one of {', '.join(store.CHANGEABLE)}")
    for name in sorted(given):
        if name != "assignee" and getattr(body, name) is None:
            raise InvalidRequest(f"{name}: must not be null")
    return await _change(request, case_id, {name: getattr(body, name) for name in given})


@router.delete("/cases/{case_id}", dependencies=[WRITES_ANSWERING_THE_CASE, only_query()])
async def close_case(request: Request, case_id: str) -> dict[str, Any]:
    """Close the case (it is kept, for the audit trail); answers it. A closed case is answered
    unchanged."""
    return await _change(request, _case_id(case_id), {"status": "closed"}, "Case closed")


@router.post(
    "/cases/{case_id}/comments",
    status_code=201,
    dependencies=[require("cases:write"), only_query()],
    openapi_extra=json_body_doc(CommentIn),
)
async def add_comment(request: Request, case_id: str) -> dict[str, Any]:
    """Add a comment by the caller; 201 with it, 409 when the case already holds 10,000."""
    body = await read_model(request, CommentIn, NOTE_BODY_BYTES)
    case_id = _case_id(case_id)
    try:
        comment = await run_in_threadpool(
            store.add_comment, request.app.state.aw.engine, case_id, body.body, principal_name(request)
        )
    except store.CaseFull as exc:
        raise Conflict(str(exc)) from None
    if comment is None:
        raise NotFound("case not found", {"case_id": case_id})
    request.state.audit_details = {"added": "comment"}
    return comment


@router.post(
    "/cases/{case_id}/timeline",
    status_code=201,
    dependencies=[require("cases:write"), only_query()],
    openapi_extra=json_body_doc(EntryIn),
)
async def add_timeline_entry(request: Request, case_id: str) -> dict[str, Any]:
    """Add a note, evidence or action to the timeline; 201 with the entry, 409 when the case
    already holds 10,000 such entries."""
    body = await read_model(request, EntryIn, NOTE_BODY_BYTES)
    case_id = _case_id(case_id)
    ts = parse_since(body.ts, "ts")
    try:
        entry = await run_in_threadpool(
            store.add_entry,
            request.app.state.aw.engine,
            case_id,
            principal_name(request),
            body.kind,
            body.title,
            body.description,
            ts,
        )
    except store.CaseFull as exc:
        raise Conflict(str(exc)) from None
    if entry is None:
        raise NotFound("case not found", {"case_id": case_id})
    request.state.audit_details = {"added": "timeline", "kind": body.kind}
    return entry


async def _history(request: Request, which: str, case_id: str, page: int, limit: int) -> dict[str, Any]:
    case_id = _case_id(case_id)
    engine = request.app.state.aw.engine
    found = await run_in_threadpool(history.page, engine, which, case_id, (page - 1) * limit, limit)
    if found is None:
        raise NotFound("case not found", {"case_id": case_id})
    items, total = found
    return {which: items, "meta": {"total": total, "page": page, "limit": limit}}


@router.get("/cases/{case_id}/comments", dependencies=[require("alerts:read"), only_query("page", "limit")])
async def list_comments(
    request: Request,
    case_id: str,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Every comment of the case, oldest first, a page at a time (the detail holds the newest)."""
    return await _history(request, "comments", case_id, page, limit)


@router.get("/cases/{case_id}/timeline", dependencies=[require("alerts:read"), only_query("page", "limit")])
async def list_timeline(
    request: Request,
    case_id: str,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Every timeline entry of the case, ordered by ``ts``, a page at a time."""
    return await _history(request, "timeline", case_id, page, limit)
