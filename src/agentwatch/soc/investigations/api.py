"""AiSOC's Investigations & Ledger routes (under ``/api/v1``).

- ``GET /cases/{case_id}/investigations``: the case's investigations and its ledger entries, a
  page at a time (oldest investigation first, each in order; ``investigation_id`` keeps one);
- ``GET /investigations/{id}``: an investigation (by its id: status, report, chain check), or one
  ledger entry with its full payload (by the entry's id, ``<investigation id>.<seq>``);
- ``POST /cases/{case_id}/investigations:start``: queue a fresh investigation (202);
- ``POST /cases/{case_id}/investigations:replay``: replay one without the model.

The ledger holds what the tools read: events (``GET /api/v1/events``, entity timelines) and
alerts. Reading it needs ``alerts:read`` and ``events:read``; starting and replaying need
``cases:write`` and both of those (the tools read them on the caller's behalf).
The ledger is append-only: there is no route that changes or deletes an entry. A case is
never erased (``DELETE`` closes it, for the audit trail), so its investigations stay readable
with it; a closed case cannot be investigated (409) until it is reopened. Should a case's row be
gone from the store, nothing of its investigations or ledger is answered (404).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.soc.cases.api import CASE_ID_RE
from agentwatch.soc.investigations import ledger, replay, store
from agentwatch.soc.investigations.llm import missing_setting
from agentwatch.soc.investigations.service import ReplaysBusy, investigator_of
from agentwatch.store.keyset import NOT_OURS

router = APIRouter(prefix="/api/v1", tags=["investigations"])

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
INVESTIGATION_ID_RE = re.compile(UUID, re.ASCII)
ENTRY_ID_RE = re.compile(rf"({UUID})\.([1-9][0-9]{{0,8}})", re.ASCII)
BODY_BYTES = 4 * 1024
HOLDS_EVENTS = {"events:read": "the ledger holds the events the investigator's tools read"}
READ = require("alerts:read", also=HOLDS_EVENTS)
RUN = require("cases:write", also={"alerts:read": "the tools read alerts", "events:read": "the tools read events"})


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    investigation_id: str | None = Field(
        None,
        max_length=36,
        pattern=f"^{UUID}$",
        description="the investigation to replay; the case's latest finished one when left out",
    )


def _case_id(case_id: str) -> str:
    if CASE_ID_RE.fullmatch(case_id) is None:
        raise InvalidRequest("case_id: must be a case id (a UUID, lowercase hex digits)")
    return case_id


async def _known_case(request: Request, case_id: str) -> str:
    case_id = _case_id(case_id)
    if await run_in_threadpool(store.case_status, request.app.state.aw.engine, case_id) is None:
        raise NotFound("case not found", {"case_id": case_id})
    return case_id


async def _case_kept(request: Request, case_id: str) -> bool:
    """Whether the store still holds the case (its ledger is readable only while it does)."""
    return await run_in_threadpool(store.case_status, request.app.state.aw.engine, case_id) is not None


@router.get(
    "/cases/{case_id}/investigations",
    dependencies=[READ, only_query("investigation_id", "limit", "cursor")],
)
async def list_entries(
    request: Request,
    case_id: str,
    investigation_id: Annotated[
        str | None, Query(max_length=36, description="only this investigation's entries")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """The case's investigations (newest first) and a page of its ledger entries (each with a
    summary; ``GET /api/v1/investigations/{entry id}`` has the payload)."""
    case_id = await _known_case(request, case_id)
    if investigation_id is not None and INVESTIGATION_ID_RE.fullmatch(investigation_id) is None:
        raise InvalidRequest("investigation_id: must be an investigation id (a UUID, lowercase hex digits)")
    at = keyset_position(cursor, 48)
    if at is not None and ENTRY_ID_RE.fullmatch(at[1]) is None:  # the key is the last entry's id
        raise InvalidRequest(NOT_OURS)
    engine = request.app.state.aw.engine
    found = await run_in_threadpool(store.of_case, engine, case_id)
    entries, total, nxt = await run_in_threadpool(store.entries_page, engine, case_id, investigation_id, limit, at)
    return {
        "case_id": case_id,
        "investigations": found,
        "entries": entries,
        "meta": {"total": total, "limit": limit},
        "next_cursor": nxt,
    }


@router.get("/investigations/{id}", dependencies=[READ, only_query()])
async def get_investigation(request: Request, id: str) -> dict[str, Any]:  # noqa: A002 (the documented name)
    """An investigation with its report and ``ledger`` (whether its chain verifies), or, given a
    ledger entry's id (``<investigation id>.<seq>``), that entry with its full payload."""
    engine = request.app.state.aw.engine
    entry = ENTRY_ID_RE.fullmatch(id)
    if entry is not None:
        found = await run_in_threadpool(store.entry, engine, entry.group(1), int(entry.group(2)))
        if found is None or not await _case_kept(request, found["case_id"]):
            raise NotFound("ledger entry not found", {"id": id})
        return found
    if INVESTIGATION_ID_RE.fullmatch(id) is None:
        raise InvalidRequest(
            "id: must be an investigation id (a UUID, lowercase hex digits)"
            " or a ledger entry id (<investigation id>.<seq>)"
        )
    doc = await run_in_threadpool(store.get, engine, id)
    if doc is None or not await _case_kept(request, doc["case_id"]):
        raise NotFound("investigation not found", {"id": id})
    key = investigator_of(request.app.state.aw).ledger_key
    doc["ledger"] = await run_in_threadpool(ledger.verify, engine, id, key)
    return doc


@router.post(
    "/cases/{case_id}/investigations:start",
    status_code=202,
    dependencies=[RUN, only_query()],
    openapi_extra=json_body_doc(StartIn),
)
async def start_investigation(request: Request, case_id: str) -> JSONResponse:
    """Queue a fresh investigation of the case by the LLM; 202 with its id (follow it at
    ``GET /api/v1/investigations/{id}``). 409 while another of the case is queued or running."""
    await read_model(request, StartIn, BODY_BYTES, optional=True)
    aw = request.app.state.aw
    why = missing_setting(aw.settings.llm)
    if why is not None:
        raise Unavailable(why)
    case_id = _case_id(case_id)
    status = await run_in_threadpool(store.case_status, aw.engine, case_id)
    if status is None:
        raise NotFound("case not found", {"case_id": case_id})
    if status == "closed":
        raise Conflict("case_id: the case is closed; reopen it (PATCH its status) to investigate it")
    try:
        row = await investigator_of(aw).begin(case_id, principal_name(request))
    except store.Busy as exc:
        raise Conflict(
            "case_id: an investigation of this case is queued or running; one runs at a time",
            {"investigation_id": exc.investigation_id},
        ) from None
    except store.TooMany:
        max_per_case = aw.settings.investigations.max_per_case
        raise Conflict(
            f"case_id: the case holds {max_per_case} investigations, the most investigations.max_per_case allows"
        ) from None
    request.state.audit_details = {"investigation_id": row["id"]}
    body = {"id": row["id"], "case_id": case_id, "status": "queued", "location": f"/api/v1/investigations/{row['id']}"}
    return JSONResponse(body, status_code=202, headers={"Location": body["location"]})


@router.post(
    "/cases/{case_id}/investigations:replay",
    dependencies=[RUN, only_query()],
    openapi_extra=json_body_doc(ReplayIn),
)
async def replay_investigation(request: Request, case_id: str) -> dict[str, Any]:
    """Replay an investigation of the case without the model: its recorded answers are fed back,
    its tool calls run again; per tool call whether the result hashes the same, and whether the
    ledger's chain verifies."""
    body = await read_model(request, ReplayIn, BODY_BYTES, optional=True)
    case_id = await _known_case(request, case_id)
    engine = request.app.state.aw.engine
    iid = body.investigation_id
    if iid is None:
        iid = await run_in_threadpool(store.latest_finished, engine, case_id)
        if iid is None:
            raise NotFound("investigation not found: the case has no finished investigation", {"case_id": case_id})
    row = await run_in_threadpool(store.row, engine, iid)
    if row is None or row.case_id != case_id:
        raise NotFound("investigation not found in this case", {"investigation_id": iid})
    if row.status in store.ACTIVE:
        raise Conflict(
            f"investigation_id: the investigation is {row.status}; replay it once it is done", {"investigation_id": iid}
        )
    try:
        investigator = investigator_of(request.app.state.aw)
        async with investigator.replay_slot():
            return await replay.replay(request.app.state.aw, iid, investigator.ledger_key)
    except ReplaysBusy:
        most = request.app.state.aw.settings.investigations.max_concurrent
        raise ApiError(
            f"replay: {most} replays are running on this node (investigations.max_concurrent), retry later",
            {"investigation_id": iid},
            status=429,
        ) from None
