"""What an offered action does when it is run: each kind through the code that already does
it (the cases store's linking, creating and changing, the recorder's alert change, the
playbook runner, the rule flag), with the permissions checked again at run time.

======================  =========================================  ================================
kind                    does                                       needs
======================  =========================================  ================================
link_alert_to_case      ``cases.store.link_alert``                 ``cases:write``
create_case             ``cases.store.create_case``                ``cases:write``
assign_alert            ``alerts.recorder.change_alert``           ``alerts:write``
assign_case             ``cases.store.update_case``                ``cases:write``
run_playbook            ``playbooks.runner.execute`` (manual)      ``playbooks:run``
disable_rule            ``detect.rule_edit.set_flag``              ``rules:write``
======================  =========================================  ================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts import recorder
from agentwatch.api.errors import Conflict, NotFound
from agentwatch.api.security import principal_name
from agentwatch.api.v1_sigma import engine_of
from agentwatch.detect import queries, rule_edit
from agentwatch.detect.rule_sync import rule_sync_of
from agentwatch.soc.cases import store as cases
from agentwatch.soc.playbooks import runner
from agentwatch.soc.playbooks import store as playbooks

MAX_ALERTS = 1000  # per case, as through the cases API
TITLE = "Alert linked from a copilot suggestion"

Runner = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Kind:
    permissions: tuple[str, ...]
    run: Runner


def _who(request: Request) -> str:
    return principal_name(request, "anonymous")


async def _link(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    engine = request.app.state.aw.engine
    try:
        linked = await run_in_threadpool(
            cases.link_alert, engine, args["case_id"], args["alert_id"], _who(request), TITLE, MAX_ALERTS
        )
    except cases.UnknownAlerts:
        raise NotFound("alert not found (deleted since it was suggested)", {"alert_id": args["alert_id"]}) from None
    except cases.CaseFull as exc:
        raise Conflict(str(exc), {"case_id": args["case_id"]}) from None
    if linked is None:
        raise NotFound("case not found", {"case_id": args["case_id"]})
    return {"case_id": args["case_id"], "alert_id": args["alert_id"], "linked": linked}


async def _create_case(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    values = {
        "title": args["title"],
        "description": "Opened from a copilot suggestion: alerts naming the same entities.",
        "severity": args["severity"],
        "status": "open",
        "assignee": None,
        "tags": ["copilot"],
        "alert_ids": args["alert_ids"],
    }
    try:
        case_id = await run_in_threadpool(cases.create_case, request.app.state.aw.engine, values, _who(request))
    except cases.UnknownAlerts as exc:
        raise NotFound(f"alert_ids: no such alert: {', '.join(exc.ids[:10])}", {"alert_ids": exc.ids}) from None
    return {"case_id": case_id, "alert_ids": args["alert_ids"], "created": True}


async def _assign_alert(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    aw = request.app.state.aw
    alert_id = args["alert_id"]
    if not await run_in_threadpool(recorder.change_alert, aw.engine, alert_id, {"assignee": args["assignee"]}):
        raise NotFound("alert not found", {"alert_id": alert_id})
    doc = await run_in_threadpool(queries.get_alert, aw.engine, alert_id)
    if doc is not None:  # live clients see the change as after PATCH /api/v1/alerts/{id}
        aw.hub.publish("alert", {k: v for k, v in doc.items() if k not in ("events", "feedback")})
    return {"alert_id": alert_id, "assignee": args["assignee"]}


async def _assign_case(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    changed = await run_in_threadpool(
        cases.update_case, request.app.state.aw.engine, args["case_id"], {"assignee": args["assignee"]}, _who(request)
    )
    if changed is None:
        raise NotFound("case not found", {"case_id": args["case_id"]})
    return {"case_id": args["case_id"], "assignee": args["assignee"], "changed": bool(changed)}


async def _run_playbook(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    aw = request.app.state.aw
    playbook = await run_in_threadpool(playbooks.get, aw.engine, args["playbook_id"])
    if playbook is None:
        raise NotFound("playbook not found", {"playbook_id": args["playbook_id"]})
    if not playbook["enabled"]:
        raise Conflict("playbook is disabled", {"playbook_id": playbook["id"]})
    alert = await run_in_threadpool(queries.get_alert, aw.engine, args["alert_id"])
    if alert is None:
        raise NotFound("alert not found", {"alert_id": args["alert_id"]})
    alert = {k: v for k, v in alert.items() if k not in ("events", "feedback")}
    run = await runner.execute(aw, playbook, alert, dry_run=False, trigger="manual", started_by=_who(request))
    if run is None:
        raise NotFound("playbook not found", {"playbook_id": playbook["id"]})
    return {"playbook_id": playbook["id"], "alert_id": alert["id"], "run": run}


async def _disable_rule(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    engine = engine_of(request)
    await run_in_threadpool(rule_sync_of(request.app.state.aw).sync)
    try:
        info = await run_in_threadpool(rule_edit.set_flag, engine, args["rule_id"], False)
    except KeyError:
        raise NotFound("rule not found", {"rule_id": args["rule_id"]}) from None
    return {"rule_id": info.id, "enabled": info.enabled}


KINDS: dict[str, Kind] = {
    "link_alert_to_case": Kind(("cases:write",), _link),
    "create_case": Kind(("cases:write",), _create_case),
    "assign_alert": Kind(("alerts:write",), _assign_alert),
    "assign_case": Kind(("cases:write",), _assign_case),
    "run_playbook": Kind(("playbooks:run",), _run_playbook),
    "disable_rule": Kind(("rules:write",), _disable_rule),
}
