"""``/api/v1/purple-team/tabletop``: tabletop sessions (list, create, read one, delete one) and
their steps (append). Reads need ``rules:read``, writes ``purple:run``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.purple import tabletop
from agentwatch.purple.api import _uuid

router = APIRouter(prefix="/api/v1/purple-team/tabletop", tags=["purple-team"])

BODY_BYTES = 64 * 1024


def _text(value: str) -> str:
    """Free text keeps its newlines and tabs; NUL would be stored differently on PostgreSQL."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _visible(value: str) -> str:
    _text(value)
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_name)]


class SessionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable_title)]
    scenario: Annotated[str, Field(min_length=1, max_length=8000), AfterValidator(_visible)]
    participants: list[Name] = Field(default_factory=list, max_length=50)


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: Name = Field(description="who acts: red, blue, an analyst's name")
    action: Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_visible)]
    expected_detection: Annotated[
        str, Field(max_length=256, description="a rule id, an alert type or a few words"), AfterValidator(_text)
    ] = ""
    notes: Annotated[str, Field(max_length=4000), AfterValidator(_text)] = ""


def _full(exc: tabletop.Full) -> ApiError:
    return ApiError(str(exc), status=409, code="CONFLICT")


@router.get("", dependencies=[require("rules:read"), only_query("limit", "cursor")])
async def list_sessions(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> dict[str, Any]:
    """Sessions newest first, without their steps (``step_count``); ``next_cursor`` goes on."""
    at = keyset_position(cursor, 36)
    rows, total, nxt = await run_in_threadpool(tabletop.search, request.app.state.aw.engine, limit, at)
    return {"sessions": rows, "total": total, "next_cursor": nxt}


@router.post(
    "", status_code=201, dependencies=[require("purple:run"), only_query()], openapi_extra=json_body_doc(SessionIn)
)
async def create_session(request: Request) -> dict[str, Any]:
    body = await read_model(request, SessionIn, BODY_BYTES)
    who = principal_name(request, "anonymous")
    participants = list(dict.fromkeys(body.participants))
    try:
        return await run_in_threadpool(
            tabletop.create, request.app.state.aw.engine, body.title, body.scenario, participants, who
        )
    except tabletop.Full as exc:
        raise _full(exc) from None


@router.get("/{session_id}", dependencies=[require("rules:read"), only_query()])
async def get_session(request: Request, session_id: str) -> dict[str, Any]:
    """One session with its steps in order."""
    _uuid(session_id, "session_id")
    doc = await run_in_threadpool(tabletop.get, request.app.state.aw.engine, session_id)
    if doc is None:
        raise NotFound("tabletop session not found", {"session_id": session_id})
    return doc


@router.delete("/{session_id}", status_code=204, dependencies=[require("purple:run"), only_query()])
async def delete_session(request: Request, session_id: str) -> Response:
    """Delete the session and its steps (204)."""
    _uuid(session_id, "session_id")
    if not await run_in_threadpool(tabletop.remove, request.app.state.aw.engine, session_id):
        raise NotFound("tabletop session not found", {"session_id": session_id})
    request.state.audit_details = {"deleted": session_id}
    return Response(status_code=204)


@router.post(
    "/{session_id}/steps",
    status_code=201,
    dependencies=[require("purple:run"), only_query()],
    openapi_extra=json_body_doc(StepIn),
)
async def add_step(request: Request, session_id: str) -> dict[str, Any]:
    """Append a step at the session's next position."""
    body = await read_model(request, StepIn, BODY_BYTES)
    _uuid(session_id, "session_id")
    who = principal_name(request, "anonymous")
    try:
        step = await run_in_threadpool(
            tabletop.add_step, request.app.state.aw.engine, session_id, body.model_dump(), who
        )
    except tabletop.Full as exc:
        raise _full(exc) from None
    if step is None:
        raise NotFound("tabletop session not found", {"session_id": session_id})
    return step
