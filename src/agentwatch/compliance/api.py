"""``/api/v1/compliance``: AiSOC's governance routes: the frameworks and controls of the shipped
library, evidence (uploaded by people, and computed from what agentwatch runs) and a dashboard
per framework saying which controls are covered, backed by uploaded evidence only, or a gap.

Reading needs ``rules:read`` and ``alerts:read`` (the answers tell which rules run and count
alerts); uploading and deleting evidence need ``compliance:write``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.compliance import assess, store
from agentwatch.compliance.evidence import MAX_BODY, EvidenceIn, decode_document
from agentwatch.compliance.library import Control, Framework, library
from agentwatch.store.keyset import encode_cursor

router = APIRouter(prefix="/api/v1/compliance", tags=["compliance"])

READ = require("rules:read", also={"alerts:read": "the answer counts alerts"})
FrameworkId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]
ControlId = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(min_length=1, max_length=512)]
EVIDENCE_ID = re.compile(r"[0-9a-f-]{36}")


def _framework(framework_id: str) -> Framework:
    found = library().framework(framework_id)
    if found is None:
        raise NotFound("framework not found", {"framework": framework_id})
    return found


def _control(control_id: str, framework_id: str | None) -> tuple[Framework, Control]:
    found = library().control(control_id)
    if found is None or (framework_id is not None and found[0].id != framework_id):
        raise NotFound("control not found", {"control_id": control_id, "framework": framework_id})
    return found


def _evidence_id(evidence_id: str) -> None:
    if EVIDENCE_ID.fullmatch(evidence_id) is None:
        raise InvalidRequest("evidence_id: must be a UUID")


def _cursor(cursor: str | None) -> tuple[float, str] | None:
    return keyset_position(cursor, 64)


def _context(aw: Any, window_days: int | None = None) -> assess.Context:
    """Bring this node's engine in line with the stored rule flags, then take its rules."""
    rules = None
    comp = aw.components.get("detection")
    if comp is not None:
        from agentwatch.detect.rule_sync import rule_sync_of

        rule_sync_of(aw).sync()
        rules = {r.id: r for r in comp.engine.rules()}
    return assess.Context(aw.settings, aw.engine, rules, window_days)


def _control_doc(fw: Framework, c: Control) -> dict[str, Any]:
    return {
        "framework": fw.id,
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "automatic": c.automatic.model_dump(mode="json") if c.automatic else None,
    }


@router.get("/frameworks", dependencies=[READ, only_query()])
async def frameworks() -> dict[str, Any]:
    """The frameworks of the control library."""
    return {"frameworks": [f.summary() for f in library().frameworks]}


@router.get("/controls", dependencies=[READ, only_query("framework", "limit", "cursor")])
async def controls(framework: FrameworkId = None, limit: Limit = 100, cursor: Cursor = None) -> dict[str, Any]:
    """Controls in library order (one framework with ``framework``), each with what in
    agentwatch gives evidence for it automatically; ``next_cursor`` goes on after the last."""
    chosen = [_framework(framework)] if framework is not None else list(library().frameworks)
    rows = [(fw, c) for fw in chosen for c in fw.controls]
    after = _cursor(cursor)
    start = 0
    if after is not None:
        pos = int(after[0])
        if not (0 <= pos < len(rows)) or rows[pos][1].id != after[1]:
            raise InvalidRequest("cursor: not a cursor of this list")
        start = pos + 1
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    nxt = encode_cursor(start + len(page) - 1, page[-1][1].id) if more and page else None
    return {"controls": [_control_doc(fw, c) for fw, c in page], "total": len(rows), "next_cursor": nxt}


@router.get("/evidence", dependencies=[READ, only_query("framework", "control_id", "limit", "cursor")])
async def list_evidence(
    request: Request,
    framework: FrameworkId = None,
    control_id: ControlId = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Uploaded evidence, newest first; with ``control_id``, also that control's automatic
    evidence as computed now."""
    if framework is not None:
        _framework(framework)
    found = _control(control_id, framework) if control_id is not None else None
    aw = request.app.state.aw
    query = store.EvidenceQuery(framework, control_id, limit, _cursor(cursor))
    items, total, nxt = await run_in_threadpool(store.search, aw.engine, query)
    out: dict[str, Any] = {"evidence": items, "total": total, "next_cursor": nxt}
    if found is not None:
        ctx = await run_in_threadpool(_context, aw)
        out["automatic"] = await run_in_threadpool(assess.automatic, ctx, found[1])
    return out


@router.post(
    "/evidence",
    status_code=201,
    dependencies=[require("compliance:write"), only_query()],
    openapi_extra=json_body_doc(EvidenceIn),
)
async def upload_evidence(request: Request) -> dict[str, Any]:
    """Record evidence for a control: a link (checked, never fetched) or a small document."""
    body = await read_model(request, EvidenceIn, MAX_BODY)
    fw, control = _control(body.control_id, body.framework)
    document = None
    if body.document is not None:
        try:
            document = decode_document(body.document)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    item = store.NewEvidence(
        fw.id, control.id, body.title, body.description, principal_name(request, "anonymous"), body.url, document
    )
    done = await run_in_threadpool(store.add, request.app.state.aw.engine, item)
    if done is None:
        raise ApiError(
            f"control_id: a control holds at most {store.MAX_PER_CONTROL} evidence uploads",
            status=507,
            code="INSUFFICIENT_STORAGE",
        )
    return done


@router.get("/evidence/{evidence_id}", dependencies=[READ, only_query()])
async def get_evidence(request: Request, evidence_id: str) -> dict[str, Any]:
    """One uploaded item, its document's bytes included (base64)."""
    _evidence_id(evidence_id)
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, evidence_id)
    if found is None:
        raise NotFound("evidence not found", {"evidence_id": evidence_id})
    return found


@router.delete("/evidence/{evidence_id}", status_code=204, dependencies=[require("compliance:write"), only_query()])
async def delete_evidence(request: Request, evidence_id: str) -> Response:
    """Delete one uploaded item and its document (204); the dashboard counts it no more."""
    _evidence_id(evidence_id)
    if not await run_in_threadpool(store.remove, request.app.state.aw.engine, evidence_id):
        raise NotFound("evidence not found", {"evidence_id": evidence_id})
    request.state.audit_details = {"deleted": evidence_id}
    return Response(status_code=204)


@router.get("/dashboard/{framework}", dependencies=[READ, only_query("window_days")])
async def dashboard(
    request: Request,
    framework: str,
    window_days: Annotated[int | None, Query(ge=1, le=365, description="alert window for every control")] = None,
) -> dict[str, Any]:
    """Per control: ``covered`` (automatic evidence holds), ``evidence`` (only uploaded
    evidence) or ``gap``, with the reasons; and the totals."""
    fw = _framework(framework)
    aw = request.app.state.aw
    ctx = await run_in_threadpool(_context, aw, window_days)
    uploaded = await run_in_threadpool(store.counts, aw.engine, fw.id)
    return await run_in_threadpool(assess.dashboard, ctx, fw, uploaded)
