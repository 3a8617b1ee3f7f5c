"""``/api/v1/copilot`` (AiSOC's ambient copilot): suggestions for the resource in view, and
running the action a suggestion offers.

``GET /copilot/context/{resource_type}/{resource_id}`` answers the suggestions for an alert, a
case, a rule or a playbook, each with its kind, a reason citing the data and, where one fits
and the caller may do it, an action: an opaque id, stored with its arguments, bound to the
caller, good for ``copilot.action_ttl_s`` and one run (:mod:`.store`).
``POST /copilot/actions/{action_id}:run`` runs it, after checking the caller's permissions
again (:mod:`.actions`); the audit row names the action's kind and what it acted on.

Reading needs ``alerts:read`` (and ``rules:read`` for a rule); running an action needs
``alerts:read`` and the action's own permission.
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import ALERT_ID_RE, assignee_name
from agentwatch.api.v1_sigma import RULE_ID, synced_engine
from agentwatch.detect import queries
from agentwatch.events.model import iso
from agentwatch.soc.cases import store as cases
from agentwatch.soc.cases.api import CASE_ID_RE
from agentwatch.soc.copilot import for_alert, for_case, for_playbook, for_rule, store
from agentwatch.soc.copilot.actions import KINDS
from agentwatch.soc.copilot.suggestion import Suggestion
from agentwatch.soc.copilot.summary import summarise
from agentwatch.soc.copilot.summary_cache import cache_of
from agentwatch.soc.playbooks import store as playbooks

router = APIRouter(prefix="/api/v1/copilot", tags=["copilot"])

RESOURCE_TYPES = ("alert", "case", "rule", "playbook")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
ID_RULES = {
    "alert": (ALERT_ID_RE, "must be an alert id (1-64 letters, digits or dashes)"),
    "case": (CASE_ID_RE, "must be a case id (a UUID, lowercase hex digits)"),
    "rule": (RULE_ID, "must be a rule id (1-256 letters, digits or . _ : -)"),
    "playbook": (UUID_RE, "must be a playbook id (a UUID, lowercase hex digits)"),
}


def _principal(request: Request) -> Any:
    return getattr(request.state, "principal", None)


def _caller_assignee(request: Request) -> str | None:
    """The caller as an assignee: a user's e-mail address, an API key's owner's, or None."""
    p = _principal(request)
    if p is None:
        return None
    name = {"user": p.name, "api_key": p.extra.get("owner_email"), "local": p.id}.get(p.kind)
    if not isinstance(name, str) or not name:
        return None
    try:  # a name too long for an assignee is not cut: that would be someone else's name
        return assignee_name(name)
    except ValueError:
        return None


def _can(request: Request, permission: str) -> bool:
    p = _principal(request)
    return p is not None and p.can(permission)


async def _alert(request: Request, alert_id: str) -> dict[str, Any]:
    doc = await run_in_threadpool(queries.get_alert, request.app.state.aw.engine, alert_id)
    if doc is None:
        raise NotFound("alert not found", {"resource_id": alert_id})
    return {k: v for k, v in doc.items() if k not in ("events", "feedback")}


async def _suggestions(request: Request, resource_type: str, resource_id: str) -> list[Suggestion]:
    aw = request.app.state.aw
    settings = aw.settings.copilot
    caller = _caller_assignee(request)
    if resource_type == "alert":
        alert = await _alert(request, resource_id)
        return await run_in_threadpool(for_alert.suggest, aw, alert, settings, caller)
    if resource_type == "case":
        case = await run_in_threadpool(cases.get_case, aw.engine, resource_id)
        if case is None:
            raise NotFound("case not found", {"resource_id": resource_id})
        return await run_in_threadpool(for_case.suggest, aw, case, settings, caller)
    if resource_type == "rule":
        if not _can(request, "rules:read"):
            raise ApiError(
                "permission 'rules:read' required: the context of a rule shows the rule", status=403, code="FORBIDDEN"
            )
        engine = await synced_engine(request)
        info = engine.infos.get(resource_id)
        if info is None:
            raise NotFound("rule not found", {"resource_id": resource_id})
        rule = {"id": info.id, "title": info.title, "enabled": info.enabled}
        return await run_in_threadpool(for_rule.suggest, aw.engine, rule, settings)
    playbook = await run_in_threadpool(playbooks.get, aw.engine, resource_id)
    if playbook is None:
        raise NotFound("playbook not found", {"resource_id": resource_id})
    return await run_in_threadpool(for_playbook.suggest, aw.engine, playbook, settings, _principal(request))


def _missing(request: Request, kind: str) -> list[str]:
    return [p for p in KINDS[kind].permissions if not _can(request, p)]


async def _answer(
    request: Request, resource_type: str, resource_id: str, found: list[Suggestion]
) -> list[dict[str, Any]]:
    """The suggestions as JSON; the actions the caller may run are stored as offers."""
    aw = request.app.state.aw
    runnable = [s for s in found if s.offer is not None and not _missing(request, s.offer.kind)]
    ids = await run_in_threadpool(
        store.offer,
        aw.engine,
        principal_name(request, "anonymous"),
        f"{resource_type}/{resource_id}",
        [s.offer for s in runnable if s.offer is not None],
        aw.settings.copilot.action_ttl_s,
    )
    offered = {id(s): made for s, made in zip(runnable, ids, strict=True)}
    out = []
    for s in found:
        doc: dict[str, Any] = {"kind": s.kind, "reason": s.reason, "data": s.data, "action": None}
        if s.offer is not None and id(s) in offered:
            action_id, expires = offered[id(s)]
            doc["action"] = {
                "id": action_id,
                "kind": s.offer.kind,
                "label": s.label,
                "permissions": list(KINDS[s.offer.kind].permissions),
                "expires_at": iso(expires),
                "run": f"/api/v1/copilot/actions/{action_id}:run",
            }
        elif s.offer is not None:
            need = ", ".join(repr(p) for p in _missing(request, s.offer.kind))
            doc["action_unavailable"] = f"{s.label}: needs permission {need}"
        out.append(doc)
    return out


@router.get(
    "/context/{resource_type}/{resource_id}",
    dependencies=[require("alerts:read"), only_query("summary")],
)
async def context(
    request: Request,
    resource_type: str,
    resource_id: str,
    summary: Annotated[bool, Query(description="true: add a short LLM summary when [llm] is configured")] = False,
) -> dict[str, Any]:
    """Suggestions computed from the store for one alert, case, rule or playbook."""
    if resource_type not in RESOURCE_TYPES:
        raise InvalidRequest(f"resource_type: must be one of {', '.join(RESOURCE_TYPES)}")
    pattern, rule = ID_RULES[resource_type]
    if pattern.fullmatch(resource_id) is None:
        raise InvalidRequest(f"resource_id: {rule}")
    found = await _suggestions(request, resource_type, resource_id)
    doc: dict[str, Any] = {
        "resource_type": resource_type,
        "resource_id": resource_id,
        "suggestions": await _answer(request, resource_type, resource_id, found),
        "summary": None,
        "generated_at": iso(time.time()),
    }
    if summary:
        aw = request.app.state.aw
        cache = cache_of(request.app.state, aw.settings.copilot)
        made, why = await summarise(aw.settings.llm, resource_type, resource_id, found, cache)
        doc["summary"] = made
        if why is not None:
            doc["summary_error"] = why
    return doc


@router.post("/actions/{action_id}:run", dependencies=[require("alerts:read"), only_query()])
async def run_action(request: Request, action_id: str) -> dict[str, Any]:
    """Run an action offered to the caller by ``GET /copilot/context/...``: once, before it
    expires, and only while the caller still holds the action's permissions."""
    if store.ACTION_ID_RE.fullmatch(action_id) is None:
        raise InvalidRequest("action_id: must be an action id offered by GET /api/v1/copilot/context (ca_...)")
    engine = request.app.state.aw.engine
    who = principal_name(request, "anonymous")
    offered = await run_in_threadpool(store.find, engine, action_id, who)
    if offered is None:
        raise NotFound("action_id: no such action was offered to you", {"action_id": action_id})
    if offered.used_at is not None:
        raise Conflict(f"action_id: already run at {iso(offered.used_at)}; an action runs once")
    if offered.expires_at <= time.time():
        raise ApiError(
            f"action_id: expired at {iso(offered.expires_at)}; ask for the context again",
            status=410,
            code="GONE",
        )
    kind = KINDS.get(offered.kind)
    if kind is None:  # offered by a newer version of this server
        raise Conflict(f"action_id: this server cannot run {offered.kind!r} actions")
    missing = _missing(request, offered.kind)
    if missing:
        raise ApiError(
            f"permission {missing[0]!r} required: to run a {offered.kind} action", status=403, code="FORBIDDEN"
        )
    if not await run_in_threadpool(store.claim, engine, action_id, who):
        raise Conflict("action_id: already run, or expired meanwhile; an action runs once")
    request.state.audit_details = {"action": offered.kind, "resource": offered.resource}
    result = await kind.run(request, offered.args)
    return {"kind": offered.kind, "resource": offered.resource, "result": result, "ran_at": iso(time.time())}
