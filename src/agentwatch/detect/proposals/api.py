"""``/api/v1/detection-proposals`` (AiSOC "Detection Proposals"): propose a Sigma rule, review
it, evaluate it on real data, decide it with a second pair of eyes, promote it into the live
rule set.

Reading needs ``rules:read``; proposing, changing (the author only), commenting, evaluating and
resetting the eval baseline ``rules:write``; deciding and promoting ``rules:approve``. The
author of a proposal cannot approve it (four-eyes rule; an API key counts as the user who
owns it). Promotion needs an approved proposal and a passing eval (:mod:`.evaluate`) of its
current logic version, and loads the rule through the same store as ``POST
/api/v1/sigma/rules``, so the rule catalogue lists it and the engine runs it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import principal_name, require
from agentwatch.detect.proposals import baselines, store
from agentwatch.detect.proposals.bodies import (
    NOTE_BODY_BYTES,
    PROPOSAL_BODY_BYTES,
    SMALL_BODY_BYTES,
    CommentIn,
    DecideIn,
    EvalIn,
    ProposalIn,
    ProposalPatch,
)
from agentwatch.detect.proposals.evaluate import cases_of, run_baseline, run_eval
from agentwatch.detect.proposals.gate import (
    audit,
    busy,
    checked_logic,
    detection_of,
    person_of,
    promote_checks,
    upload,
)
from agentwatch.detect.proposals.logic import LogicError

router = APIRouter(prefix="/api/v1/detection-proposals", tags=["detection-proposals"])

PROPOSAL_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)


def _settings(request: Request) -> Any:
    return request.app.state.aw.settings.proposals


async def _proposal(request: Request, proposal_id: str) -> store.Proposal:
    if PROPOSAL_ID_RE.fullmatch(proposal_id) is None:
        raise InvalidRequest("proposal_id: must be a proposal id (a UUID, lowercase hex digits)")
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, proposal_id)
    if found is None:
        raise NotFound("proposal not found", {"proposal_id": proposal_id})
    return found


async def _answer(request: Request, proposal_id: str) -> dict[str, Any]:
    """The proposal with its logic, test cases, comments, evals and its current version's latest eval."""
    p = await _proposal(request, proposal_id)
    engine = request.app.state.aw.engine
    latest = await run_in_threadpool(store.latest_eval, engine, p.id, p.version)
    return {
        **p.full(),
        "latest_eval": store.eval_json(latest) if latest is not None else None,
        "evals": await run_in_threadpool(store.evals, engine, p.id),
        "comments": await run_in_threadpool(store.comments, engine, p.id),
    }


def _changed(exc: store.WrongStatus | store.Changed) -> Conflict:
    if isinstance(exc, store.WrongStatus):
        return Conflict(str(exc), {"status": exc.current})
    return Conflict("proposal: changed by another request meanwhile; read it again")


@router.get("/baseline", dependencies=[require("rules:read"), only_query()])
async def get_baseline(request: Request) -> dict[str, Any]:
    """The eval baseline: the live rule set's numbers over the eval window, as last reset."""
    found = await run_in_threadpool(baselines.latest_baseline, request.app.state.aw.engine)
    if found is None:
        raise NotFound("baseline: none yet; POST /api/v1/detection-proposals/baseline makes one")
    return found


@router.post("/baseline", status_code=201, dependencies=[require("rules:write"), only_query()])
async def reset_baseline(request: Request) -> dict[str, Any]:
    """Run the live rule set over the eval window and the judged alerts; store it as the baseline."""
    aw = request.app.state.aw
    detection = detection_of(request)
    with busy(aw):
        metrics = await run_in_threadpool(run_baseline, aw.engine, detection, _settings(request))
    saved = await run_in_threadpool(baselines.save_baseline, aw.engine, metrics, principal_name(request))
    request.state.audit_details = {"created": "baseline"}
    return saved


@router.get("", dependencies=[require("rules:read"), only_query("status", "limit", "cursor")])
async def list_proposals(
    request: Request,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Proposals, newest first, optionally of one status; ``next_cursor`` pages on."""
    if status is not None and status not in store.STATUSES:
        raise InvalidRequest(f"status: must be one of {', '.join(store.STATUSES)}")
    at = keyset_position(cursor, 36)
    rows, total, nxt = await run_in_threadpool(store.search, request.app.state.aw.engine, status, limit, at)
    return {"proposals": rows, "meta": {"total": total, "limit": limit}, "next_cursor": nxt}


@router.post(
    "", status_code=201, dependencies=[require("rules:write"), only_query()], openapi_extra=json_body_doc(ProposalIn)
)
async def create_proposal(request: Request) -> dict[str, Any]:
    """Propose a rule; its Sigma logic is compiled now (400 naming the line and column when it
    cannot be), and every test case is built as ingest would build it."""
    body = await read_model(request, ProposalIn, PROPOSAL_BODY_BYTES)
    compiled = await checked_logic(request, body.logic)
    doc = {**body.model_dump(), "rule_id": compiled.rule_id}
    aw = request.app.state.aw
    limit = _settings(request).max_proposals
    pid = await run_in_threadpool(store.create, aw.engine, doc, principal_name(request), person_of(request), limit)
    if pid is None:
        raise ApiError(
            f"proposals: at most proposals.max_proposals ({limit:,}) are kept", status=507, code="INSUFFICIENT_STORAGE"
        )
    request.state.audit_details = {"created": pid}
    return await _answer(request, pid)


@router.get("/{proposal_id}", dependencies=[require("rules:read"), only_query()])
async def get_proposal(request: Request, proposal_id: str) -> dict[str, Any]:
    return await _answer(request, proposal_id)


@router.patch(
    "/{proposal_id}", dependencies=[require("rules:write"), only_query()], openapi_extra=json_body_doc(ProposalPatch)
)
async def patch_proposal(request: Request, proposal_id: str) -> dict[str, Any]:
    """The author changes an open or evaluated proposal; new logic or test cases make a new logic
    version and put it back to open (409 naming the status once it is decided)."""
    body = await read_model(request, ProposalPatch, PROPOSAL_BODY_BYTES)
    p = await _proposal(request, proposal_id)
    given = {name: getattr(body, name) for name in body.model_fields_set}
    if not given:
        raise InvalidRequest("body: give at least one of title, description, logic, mitre_tags, test_cases")
    for name, value in given.items():
        if value is None:
            raise InvalidRequest(f"{name}: must not be null")
    if person_of(request) != p.row.author_person:
        raise ApiError("proposal: only its author may change it; comment instead", status=403, code="FORBIDDEN")
    values: dict[str, Any] = {k: v for k, v in given.items() if k in ("title", "description")}
    if "mitre_tags" in given:
        values["mitre_tags"] = orjson.dumps(body.mitre_tags).decode()
    if "test_cases" in given:
        values["test_cases"] = orjson.dumps(body.test_cases.model_dump()).decode()  # type: ignore[union-attr]
    if "logic" in given:
        compiled = await checked_logic(request, body.logic)
        values.update(logic=body.logic, rule_id=compiled.rule_id)
    try:
        await run_in_threadpool(
            store.change, request.app.state.aw.engine, p, values, "logic" in given or "test_cases" in given
        )
    except (store.WrongStatus, store.Changed) as exc:
        raise _changed(exc) from None
    request.state.audit_details = {"changed": sorted(given)}
    return await _answer(request, p.id)


@router.post(
    "/{proposal_id}/comment",
    status_code=201,
    dependencies=[require("rules:write"), only_query()],
    openapi_extra=json_body_doc(CommentIn),
)
async def add_comment(request: Request, proposal_id: str) -> dict[str, Any]:
    """A review comment by the caller, at any status; 409 once the proposal holds 1,000."""
    body = await read_model(request, CommentIn, NOTE_BODY_BYTES)
    p = await _proposal(request, proposal_id)
    try:
        comment = await run_in_threadpool(
            store.add_comment, request.app.state.aw.engine, p.id, principal_name(request), body.body
        )
    except store.Full as exc:
        raise Conflict(str(exc)) from None
    request.state.audit_details = {"added": "comment"}
    return comment


@router.post(
    "/{proposal_id}/eval",
    status_code=201,
    dependencies=[require("rules:write"), only_query()],
    openapi_extra=json_body_doc(EvalIn),
)
async def evaluate(request: Request, proposal_id: str) -> dict[str, Any]:
    """Run the current logic on the test cases, the stored events of the window and the judged
    alerts; store and answer the result (with deltas against the baseline and any outside
    metrics attached). An open proposal becomes evaluated."""
    body = await read_model(request, EvalIn, SMALL_BODY_BYTES, optional=True)
    p = await _proposal(request, proposal_id)
    if p.status not in store.EVALUABLE:
        raise Conflict(str(store.WrongStatus("evaluated", p.status, store.EVALUABLE)), {"status": p.status})
    aw = request.app.state.aw
    comp = aw.components.get("detection")
    detection = comp.engine if comp is not None else None
    baseline = await run_in_threadpool(baselines.latest_baseline, aw.engine)
    cases = cases_of(p.row.test_cases)
    with busy(aw):
        try:
            passed, result = await run_in_threadpool(
                run_eval, aw.engine, detection, p.row.logic, cases, _settings(request), baseline
            )
        except LogicError as exc:  # stored logic the compiler no longer takes (a field map changed)
            raise ApiError(str(exc), exc.details(), status=422, code="INVALID_RULE") from None
    external = body.external.model_dump() if body.external is not None else None
    saved = await run_in_threadpool(store.add_eval, aw.engine, p, passed, result, external, principal_name(request))
    request.state.audit_details = {"added": "eval", "passed": passed}
    return JSON(saved, status_code=201)


@router.post(
    "/{proposal_id}/decide",
    dependencies=[require("rules:approve"), only_query()],
    openapi_extra=json_body_doc(DecideIn),
)
async def decide(request: Request, proposal_id: str) -> dict[str, Any]:
    """Approve or reject an open or evaluated proposal, with a reason. The author cannot approve
    their own proposal (403); another status answers 409 naming it."""
    body = await read_model(request, DecideIn, NOTE_BODY_BYTES)
    p = await _proposal(request, proposal_id)
    approve = body.decision == "approve"
    me = person_of(request)
    if approve and me == p.row.author_person and not me.startswith("local:"):
        raise ApiError(
            "four-eyes rule: the author of a proposal cannot approve it; another person with rules:approve must",
            {"author": p.row.author},
            status=403,
            code="FORBIDDEN",
        )
    if body.logic_version is not None and body.logic_version != p.version:
        raise Conflict(f"logic_version: the proposal is at logic version {p.version}", {"logic_version": p.version})
    try:
        await run_in_threadpool(
            store.decide, request.app.state.aw.engine, p, approve, body.reason, principal_name(request)
        )
    except (store.WrongStatus, store.Changed) as exc:
        raise _changed(exc) from None
    details = {"decision": body.decision, "logic_version": p.version}
    request.state.audit_details = details
    await audit(request, f"detection_proposal.{body.decision}", p.id, details)
    return await _answer(request, p.id)


@router.post("/{proposal_id}/promote", dependencies=[require("rules:approve"), only_query()])
async def promote(request: Request, proposal_id: str) -> dict[str, Any]:
    """Load an approved proposal's rule into the live rule set (the uploaded-rule store of
    ``/api/v1/sigma/rules``); needs a passing eval of the current logic version."""
    p = await _proposal(request, proposal_id)
    aw = request.app.state.aw
    latest = await run_in_threadpool(store.latest_eval, aw.engine, p.id, p.version)
    promote_checks(p, latest)
    rule_id = await upload(request, p)
    try:
        await run_in_threadpool(store.mark_promoted, aw.engine, p, rule_id, principal_name(request))
    except store.Changed as exc:
        raise _changed(exc) from None
    details = {"rule_id": rule_id, "logic_version": p.version, "eval_id": latest.id}
    request.state.audit_details = details
    await audit(request, "detection_proposal.promote", p.id, details)
    return await _answer(request, p.id)
