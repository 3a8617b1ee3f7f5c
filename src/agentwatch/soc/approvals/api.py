"""``/api/v1/approvals`` (AiSOC's responder routes): approval requests, four-eyes.

Reading needs ``alerts:read``; asking ``approvals:request``; deciding (``{id}:approve``,
``{id}:reject``) ``approvals:decide``, and never by the person who asked (an API key counts as
the user who owns it). A decision is taken once: a second decider, or one coming after the
expiry, gets 409 naming the status. Approving a request that holds an action (a playbook run)
starts that action as a task of the server and waits for it a bounded time (a playbook run:
``playbooks.execute_wait_s``): the answer shows its outcome when it ended by then, else the
request as it stands (``approved``, the outcome saying the run is ``running``); the final status
and outcome are recorded when it ends, the decider's going away not stopping it. Should this
node die before the action started, another node (or this one, restarted) starts it
(:func:`decisions.release_pass`). Each person may have
``approvals.max_pending_per_requester`` requests waiting (507 past it), so nobody crowds out
the others.

With authentication off (``--no-auth``, loopback only) every caller is the one local operator:
"another person" cannot exist, so that operator decides, and the audit entry of the decision
says the four-eyes rule was not enforced. A request still waits for that explicit decision.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.soc.approvals import decisions, store
from agentwatch.soc.approvals.bodies import DecisionIn, RequestIn
from agentwatch.soc.approvals.kinds import known
from agentwatch.soc.auth.service import client_of

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])
APPROVAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
BODY_BYTES = 16 * 1024
Status = Literal["pending", "approved", "rejected", "expired", "executed", "failed"]
FOUR_EYES = (
    "four-eyes rule: whoever asked for an approval cannot decide it, through any of their API keys either; "
    "another person with approvals:decide must"
)


def _id(approval_id: str) -> str:
    if APPROVAL_ID.fullmatch(approval_id) is None:
        raise InvalidRequest("approval_id: must be an approval id (a UUID, lowercase hex digits)")
    return approval_id


@router.get("", dependencies=[require("alerts:read"), only_query("status", "kind", "limit", "cursor")])
async def list_approvals(
    request: Request,
    status: Status | None = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Requests, newest first, of one status and kind when asked; ``next_cursor`` goes on."""
    if kind is not None and not known(kind):
        raise InvalidRequest(f"kind: unknown kind {kind[:32]!r}")
    at = keyset_position(cursor, 36)
    rows, nxt = await run_in_threadpool(store.page, request.app.state.aw.engine, limit, at, status=status, kind=kind)
    return {"approvals": rows, "next_cursor": nxt}


@router.post(
    "",
    status_code=201,
    dependencies=[require("approvals:request"), only_query()],
    openapi_extra=json_body_doc(RequestIn),
)
async def create_approval(request: Request) -> dict[str, Any]:
    """Ask for an approval; 201 with the pending request."""
    body = await read_model(request, RequestIn, BODY_BYTES)
    aw = request.app.state.aw
    settings = aw.settings.approvals
    if body.expires_in_s is not None and body.expires_in_s > settings.max_ttl_s:
        raise InvalidRequest(f"expires_in_s: must be at most approvals.max_ttl_s ({settings.max_ttl_s})")
    principal = getattr(request.state, "principal", None)
    row = store.new_row(
        kind=body.kind,
        subject=body.subject,
        reason=body.reason,
        action=body.action,
        gated=None,
        requested_by=principal_name(request, "anonymous"),
        requester=decisions.person_of(principal),
        ttl_s=body.expires_in_s or settings.default_ttl_s,
    )
    try:
        doc = await run_in_threadpool(
            store.create, aw.engine, row, settings.max_pending, settings.max_pending_per_requester
        )
    except store.TooMany as exc:
        raise too_many(settings.max_pending, settings.max_pending_per_requester if exc.mine else None) from None
    request.state.audit_details = {"created": doc["id"], "kind": doc["kind"]}
    return doc


def too_many(max_pending: int, per_requester: int | None = None) -> ApiError:
    """The 507 of a request past ``approvals.max_pending``, or past the requester's own bound
    ``approvals.max_pending_per_requester`` when ``per_requester`` is given."""
    if per_requester is not None:
        message = (
            f"approvals: you have approvals.max_pending_per_requester ({per_requester:,}) requests "
            "waiting for a decision already; wait for one to be decided"
        )
    else:
        message = f"approvals: approvals.max_pending ({max_pending:,}) requests are waiting for a decision already"
    return ApiError(message, status=507, code="INSUFFICIENT_STORAGE")


@router.get("/{approval_id}", dependencies=[require("alerts:read"), only_query()])
async def get_approval(request: Request, approval_id: str) -> dict[str, Any]:
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, _id(approval_id))
    if found is None:
        raise NotFound("approval request not found", {"approval_id": approval_id})
    return found


async def _decide(request: Request, approval_id: str, approve: bool) -> dict[str, Any]:
    body = await read_model(request, DecisionIn, BODY_BYTES, optional=True)
    rid = _id(approval_id)
    try:
        doc = await decisions.decide(
            request.app.state.aw,
            rid,
            approve=approve,
            principal=getattr(request.state, "principal", None),
            client=client_of(request),
            comment=body.comment,
        )
    except store.Refused as exc:
        current = exc.current or {}
        if exc.why == "missing":
            raise NotFound("approval request not found", {"approval_id": rid}) from None
        if exc.why == "own":
            raise ApiError(FOUR_EYES, {"requested_by": current.get("requested_by")}, status=403) from None
        if exc.why == "expired":
            raise Conflict(
                f"status: the request expired at {current.get('expires_at')}; it can no longer be decided",
                {"status": "expired"},
            ) from None
        raise Conflict(
            f"status: the request is {current.get('status')} already; it can be decided once",
            {"status": current.get("status"), "decided_by": current.get("decided_by")},
        ) from None
    request.state.audit_details = {"decision": "approve" if approve else "reject", "status": doc["status"]}
    return doc


@router.post(
    "/{approval_id}:approve",
    dependencies=[require("approvals:decide"), only_query()],
    openapi_extra=json_body_doc(DecisionIn),
)
async def approve(request: Request, approval_id: str) -> dict[str, Any]:
    """Approve a pending request (a comment is optional); a request holding an action starts it
    now, and the answer has its ``outcome`` (status ``executed`` or ``failed``), or, for a
    playbook run still going after ``playbooks.execute_wait_s``, status ``approved`` with
    ``outcome.run_status`` ``running`` (the request shows how it ended once it does)."""
    return await _decide(request, approval_id, True)


@router.post(
    "/{approval_id}:reject",
    dependencies=[require("approvals:decide"), only_query()],
    openapi_extra=json_body_doc(DecisionIn),
)
async def reject(request: Request, approval_id: str) -> dict[str, Any]:
    """Reject a pending request (a comment is optional); an action it holds is dropped."""
    return await _decide(request, approval_id, False)
