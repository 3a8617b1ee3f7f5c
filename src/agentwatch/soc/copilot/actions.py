"""What an offered action does when it is run: each kind through the code that already does
it (the cases store's linking, creating and changing, the recorder's alert change, the
playbook runner, the rule flag), with the permissions checked again at run time.

======================  =========================================  ================================
kind                    does                                       needs
======================  =========================================  ================================
link_alert_to_case      ``cases.store.link_alert``                 ``cases:write``
create_case             ``cases.store.create_case``                ``cases:write``
assign_alert            as ``alerts.recorder.change_alert``        ``alerts:write``
assign_case             ``cases.store.update_case``                ``cases:write``
run_playbook            ``playbooks.runner.start`` (manual)        ``playbooks:run``
disable_rule            ``detect.rule_edit.set_flag``              ``rules:write``
======================  =========================================  ================================

A playbook runs as through ``POST /playbooks/{id}/execute``: its steps are a task of the server,
waited for at most ``playbooks.execute_wait_s``; a longer run is answered as it stands
(``running``) and goes on (the caller going away does not stop it). A run of a playbook that
requires approval is held (``awaiting_approval``), its requester the person asking (an API key:
its owner), so the four-eyes rule holds.

An assign action was offered because nobody was assigned: it is refused (409) when someone else
was assigned meanwhile, never taking the alert or case from them (the alert's checked under its
lock; the case's just before the change).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy import Engine, select, update
from starlette.concurrency import run_in_threadpool

from agentwatch.api.errors import Conflict, NotFound
from agentwatch.api.security import principal_name
from agentwatch.api.v1_sigma import engine_of
from agentwatch.detect import queries, rule_edit
from agentwatch.detect.rule_sync import rule_sync_of
from agentwatch.soc.approvals.api import too_many
from agentwatch.soc.approvals.decisions import person_of
from agentwatch.soc.cases import store as cases
from agentwatch.soc.cases.schema import cases as cases_table
from agentwatch.soc.playbooks import approval, runner
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.store.alerts_schema import alerts

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


def _take_alert(engine: Engine, alert_id: str, assignee: str) -> tuple[bool, str | None]:
    """Assign the alert to ``assignee`` while nobody else holds it, under the alert's lock (as
    ``recorder.change_alert``): (found, who else holds it, None when it is now ``assignee``'s)."""
    with engine.begin() as conn:
        if not queries.lock_alert(conn, alert_id):
            return False, None
        held = conn.execute(select(alerts.c.assignee).where(alerts.c.id == alert_id)).scalar()
        if held and held != assignee:
            return True, held
        if held != assignee:
            done = conn.execute(
                update(alerts).where(alerts.c.id == alert_id).values(assignee=assignee, updated_at=time.time())
            )
            return done.rowcount == 1, None
    return True, None


def _taken(what: str, held: str, ident: dict[str, str]) -> Conflict:
    return Conflict(f"{what}: assigned to {held!r} since it was suggested; change the assignee there", ident)


async def _assign_alert(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    """Offered because nobody was assigned: refused (409) when someone was meanwhile."""
    aw = request.app.state.aw
    alert_id = args["alert_id"]
    found, held = await run_in_threadpool(_take_alert, aw.engine, alert_id, args["assignee"])
    if not found:
        raise NotFound("alert not found", {"alert_id": alert_id})
    if held is not None:
        raise _taken("alert", held, {"alert_id": alert_id})
    doc = await run_in_threadpool(queries.get_alert, aw.engine, alert_id)
    if doc is not None:  # live clients see the change as after PATCH /api/v1/alerts/{id}
        aw.hub.publish("alert", {k: v for k, v in doc.items() if k not in ("events", "feedback")})
    return {"alert_id": alert_id, "assignee": args["assignee"]}


def _case_assignee(engine: Engine, case_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(cases_table.c.assignee).where(cases_table.c.id == case_id)).scalar()


async def _assign_case(request: Request, args: dict[str, Any]) -> dict[str, Any]:
    """Offered because nobody was assigned: refused (409) when someone was meanwhile."""
    held = await run_in_threadpool(_case_assignee, request.app.state.aw.engine, args["case_id"])
    if held and held != args["assignee"]:
        raise _taken("case", held, {"case_id": args["case_id"]})
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
    try:  # as POST /playbooks/{id}/execute: the person asking, for an approval's four-eyes rule
        run, _ = await runner.start(
            aw,
            playbook,
            alert,
            dry_run=False,
            trigger="manual",
            started_by=_who(request),
            person=person_of(getattr(request.state, "principal", None)),
        )
    except approval.Held as exc:
        bounds = aw.settings.approvals
        raise too_many(bounds.max_pending, bounds.max_pending_per_requester if exc.mine else None) from None
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
