"""``/api/v1/playbooks`` and ``/api/v1/actions/dry-run`` (AiSOC "Cases & Response"): the
playbook catalogue (list, create, read, replace, delete), running a playbook on an alert, its
run history, and simulating actions on an alert without changing anything.

Reading playbooks and runs needs ``alerts:read``; creating, changing and deleting them
``playbooks:write``; running and simulating ``playbooks:run`` (with ``alerts:read``: the
answer shows the alert's fields). A body is checked whole: the 400 names the first problem
(``steps[1].params.url: ...``) and lists every one in ``details``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_limited, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import ALERT_ID_RE
from agentwatch.detect import queries
from agentwatch.masking import mask_url
from agentwatch.soc.approvals.api import too_many
from agentwatch.soc.approvals.decisions import person_of
from agentwatch.soc.playbooks import approval, runner, store
from agentwatch.soc.playbooks.actions import ACTIONS, RunContext
from agentwatch.soc.playbooks.model import Invalid, PlaybookIn, Step, parse_playbook, parse_steps, problems_of
from agentwatch.soc.playbooks.trigger import trigger_of

router = APIRouter(prefix="/api/v1", tags=["playbooks"])

PLAYBOOK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
BODY_BYTES = 256 * 1024
EXECUTE_BYTES = 4 * 1024
RUNNING = require("playbooks:run", also={"alerts:read": "the answer shows the alert"})


def _id(playbook_id: str) -> str:
    if PLAYBOOK_ID.fullmatch(playbook_id) is None:
        raise InvalidRequest("playbook_id: must be a playbook id (a UUID, lowercase hex digits)")
    return playbook_id


def _invalid(exc: Invalid) -> InvalidRequest:
    return InvalidRequest(str(exc), exc.problems[:100])


async def _document(request: Request) -> dict[str, Any]:
    raw = await read_limited(request, BODY_BYTES)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body: malformed JSON ({exc})") from None
    try:
        playbook = parse_playbook(doc, request.app.state.aw.settings.playbooks)
    except Invalid as exc:
        raise _invalid(exc) from None
    check_step_permissions(request, playbook)
    return playbook


def check_step_permissions(request: Request, playbook: dict[str, Any]) -> None:
    """Refuse (403 naming the step) a caller who lacks the permission of one of ``playbook``'s steps.

    A playbook acts later, on its own, with no person present: whoever saves it must hold the
    permission of each of its steps, so ``playbooks:write`` never lends more than its holder has
    (close alerts, write cases or indicators, send alert data out)."""
    principal = getattr(request.state, "principal", None)
    for i, step in enumerate(playbook["steps"]):
        needed = ACTIONS[step["action"]].permission
        if principal is None or not principal.can(needed):
            raise ApiError(
                f"steps[{i}].action: {step['action']!r} needs permission {needed!r}, which the caller does not hold",
                status=403,
            )


async def reload_automatic_playbooks(request: Request) -> None:
    """After a playbook was created, replaced or deleted through this node: let the automatic
    trigger read its playbooks again now (other nodes do within ``playbooks.refresh_s``)."""
    trigger = trigger_of(request.app.state.aw)
    if trigger is not None:
        await trigger.reload()


def _shown(request: Request, playbook: dict[str, Any]) -> dict[str, Any]:
    """``playbook`` as the caller may see it: a webhook URL may be a credential (a Slack or
    Teams hook), so only a caller who may change playbooks sees its path and query."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.can("playbooks:write"):
        return playbook
    steps = [
        {**s, "params": {**s["params"], "url": mask_url(s["params"]["url"], hide_path=True)}}
        if s["action"] == "notify_webhook" and "url" in s["params"]
        else s
        for s in playbook["steps"]
    ]
    return {**playbook, "steps": steps}


async def _playbook(request: Request, playbook_id: str) -> dict[str, Any]:
    found = await run_in_threadpool(store.get, request.app.state.aw.engine, _id(playbook_id))
    if found is None:
        raise NotFound("playbook not found", {"playbook_id": playbook_id})
    return found


@router.get("/playbooks", dependencies=[require("alerts:read"), only_query("page", "limit")])
async def list_playbooks(
    request: Request,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The playbook catalogue, oldest first."""
    rows, total = await run_in_threadpool(store.list_page, request.app.state.aw.engine, (page - 1) * limit, limit)
    return {"playbooks": [_shown(request, p) for p in rows], "meta": {"total": total, "page": page, "limit": limit}}


@router.post(
    "/playbooks",
    status_code=201,
    dependencies=[require("playbooks:write"), only_query()],
    openapi_extra=json_body_doc(PlaybookIn),
)
async def create_playbook(request: Request) -> dict[str, Any]:
    """Store a playbook; 201 with it. 409 when the name is taken or the catalogue is full."""
    doc = await _document(request)
    aw = request.app.state.aw
    try:
        pid = await run_in_threadpool(
            store.create, aw.engine, doc, principal_name(request), aw.settings.playbooks.max_playbooks
        )
    except store.NameTaken:
        raise Conflict(f"name: a playbook named {doc['name']!r} exists already") from None
    except store.Full:
        raise Conflict(
            f"body: the store holds playbooks.max_playbooks ({aw.settings.playbooks.max_playbooks})"
        ) from None
    request.state.audit_details = {"created": pid}
    await reload_automatic_playbooks(request)
    return await _playbook(request, pid)


@router.get("/playbooks/{playbook_id}", dependencies=[require("alerts:read"), only_query()])
async def get_playbook(request: Request, playbook_id: str) -> dict[str, Any]:
    """The playbook (a webhook URL's path and query masked for callers who may not change it)."""
    return _shown(request, await _playbook(request, playbook_id))


@router.put(
    "/playbooks/{playbook_id}",
    dependencies=[require("playbooks:write"), only_query()],
    openapi_extra=json_body_doc(PlaybookIn),
)
async def replace_playbook(request: Request, playbook_id: str) -> dict[str, Any]:
    """Replace the whole playbook (its runs are kept); answers it."""
    doc = await _document(request)
    pid = _id(playbook_id)
    try:
        found = await run_in_threadpool(store.replace, request.app.state.aw.engine, pid, doc)
    except store.NameTaken:
        raise Conflict(f"name: a playbook named {doc['name']!r} exists already") from None
    if not found:
        raise NotFound("playbook not found", {"playbook_id": pid})
    request.state.audit_details = {"replaced": pid}
    await reload_automatic_playbooks(request)
    return await _playbook(request, pid)


@router.delete("/playbooks/{playbook_id}", status_code=204, dependencies=[require("playbooks:write"), only_query()])
async def delete_playbook(request: Request, playbook_id: str) -> Response:
    """Delete the playbook and its run history; 204."""
    pid = _id(playbook_id)
    if not await run_in_threadpool(store.remove, request.app.state.aw.engine, pid):
        raise NotFound("playbook not found", {"playbook_id": pid})
    request.state.audit_details = {"deleted": pid}
    await reload_automatic_playbooks(request)
    return Response(status_code=204)


class AlertRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alert_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]{1,64}$")


class ExecuteIn(AlertRef):
    dry_run: bool = Field(False, strict=True, description="true: say what each step would change, change nothing")


async def _alert(request: Request, alert_id: str) -> dict[str, Any]:
    if ALERT_ID_RE.fullmatch(alert_id) is None:
        raise InvalidRequest("alert_id: must be 1-64 letters, digits or dashes")
    doc = await run_in_threadpool(queries.get_alert, request.app.state.aw.engine, alert_id)
    if doc is None:
        raise InvalidRequest(f"alert_id: no such alert: {alert_id}", {"alert_id": alert_id})
    return {k: v for k, v in doc.items() if k not in ("events", "feedback")}


@router.post(
    "/playbooks/{playbook_id}/execute",
    dependencies=[RUNNING, only_query()],
    openapi_extra=json_body_doc(ExecuteIn),
    responses={202: {"description": "the run outlasted playbooks.execute_wait_s: it goes on, status running"}},
)
async def execute_playbook(request: Request, response: Response, playbook_id: str) -> dict[str, Any]:
    """Run the playbook's steps on an alert, in order; answers the stored run with each step's
    status, output and error. A run still going after ``playbooks.execute_wait_s`` is answered
    202 as it stands (``running``) and goes on in the background (the runs list shows how it
    ended). 409 when the playbook is disabled (a dry run is allowed). A playbook requiring
    approval is not run: the run answered is ``awaiting_approval`` and names its ``approval_id``
    (507 when ``approvals.max_pending`` requests wait already)."""
    body = await read_model(request, ExecuteIn, EXECUTE_BYTES)
    playbook = await _playbook(request, playbook_id)
    if not playbook["enabled"] and not body.dry_run:
        raise Conflict("playbook is disabled: enable it, or ask for a dry_run", {"playbook_id": playbook["id"]})
    alert = await _alert(request, body.alert_id)
    aw = request.app.state.aw
    try:
        run, going = await runner.start(
            aw,
            playbook,
            alert,
            dry_run=body.dry_run,
            trigger="manual",
            started_by=principal_name(request, "anonymous"),
            person=person_of(getattr(request.state, "principal", None)),
        )
    except approval.Held as exc:
        bounds = aw.settings.approvals
        raise too_many(bounds.max_pending, bounds.max_pending_per_requester if exc.mine else None) from None
    if going:  # a task of the server: the client going away does not cancel it
        response.status_code = 202
    if run is None:  # deleted since it was read above (a manual run never meets an earlier one)
        raise NotFound("playbook not found", {"playbook_id": playbook["id"]})
    request.state.audit_details = {"run": run["id"], "status": run["status"], "dry_run": body.dry_run}
    return run


@router.get("/playbooks/{playbook_id}/runs", dependencies=[require("alerts:read"), only_query("page", "limit")])
async def list_runs(
    request: Request,
    playbook_id: str,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The playbook's runs, newest first."""
    playbook = await _playbook(request, playbook_id)
    engine = request.app.state.aw.engine
    rows, total = await run_in_threadpool(store.list_runs, engine, playbook["id"], (page - 1) * limit, limit)
    return {"runs": rows, "meta": {"total": total, "page": page, "limit": limit}}


class DryRunIn(AlertRef):
    action: str | None = Field(None, min_length=1, max_length=64, description="one action (with params)...")
    params: dict[str, Any] | None = None
    steps: list[Step] | None = Field(None, description="...or steps as a playbook holds them...")
    playbook_id: str | None = Field(None, max_length=36, description="...or the steps of a stored playbook")


def _dry_run_steps(body: DryRunIn) -> list[Any] | None:
    given = [n for n in ("action", "steps", "playbook_id") if getattr(body, n) is not None]
    if len(given) != 1:
        raise InvalidRequest("body: give exactly one of action (with params), steps, playbook_id")
    if body.params is not None and body.action is None:
        raise InvalidRequest("params: only with action")
    if body.action is not None:
        return [{"action": body.action, "params": body.params or {}}]
    if body.steps is not None:
        return [s.model_dump(exclude_unset=True) for s in body.steps]
    return None


@router.post("/actions/dry-run", dependencies=[RUNNING, only_query()], openapi_extra=json_body_doc(DryRunIn))
async def dry_run(request: Request) -> dict[str, Any]:
    """What one action, a list of steps, or a stored playbook would change on an alert; nothing
    is changed, nothing is sent and no run is stored."""
    body = await read_model(request, DryRunIn, BODY_BYTES)
    aw = request.app.state.aw
    raw = _dry_run_steps(body)
    playbook = None
    if raw is None:
        playbook = await _playbook(request, str(body.playbook_id))
        raw = playbook["steps"]
    try:
        checked = parse_steps(raw, aw.settings.playbooks)
    except Invalid as exc:
        if body.action is not None:  # one action: name its fields as the body does
            exc = Invalid([{**p, "field": p["field"].replace("steps[0].", "", 1)} for p in exc.problems])
        raise _invalid(exc) from None
    except ValidationError as exc:
        raise InvalidRequest(problems_of(exc)[0]["field"]) from None
    alert = await _alert(request, body.alert_id)
    steps = [
        {**step.model_dump(), "params": params.model_dump(mode="json", exclude_unset=True)} for step, params in checked
    ]
    ctx = RunContext(aw, alert, author="dry-run", playbook=playbook)
    status, results = await runner.run_steps(ctx, steps, dry_run=True)
    return {
        "alert_id": alert["id"],
        "playbook_id": body.playbook_id,
        "dry_run": True,
        "status": status,
        "steps": results,
    }
