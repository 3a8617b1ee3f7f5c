"""``add_alert_to_case``: link the run's alert to a named case, or open a new case holding it.

With ``case_id`` the alert joins that case (a case holds at most 1,000 alerts, as through the
cases API); without, a new case is opened with ``title`` (placeholders:
:mod:`.templates`), ``severity`` (the alert's when left out) and ``tags``. Later steps of the
run (``add_case_comment`` without a ``case_id``) write on that case.

Linking goes through the cases store's ``link_alert``, which adds the one link under the case's
lock: runs on any node adding different alerts to one case at once all land.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.soc.cases import store as cases
from agentwatch.soc.playbooks.actions.base import Action, ActionError, Params, RunContext
from agentwatch.soc.playbooks.actions.templates import render

CASE_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_ALERTS = 1000
TITLE = 256


class AddAlertToCaseParams(Params):
    case_id: str | None = Field(None, pattern=CASE_ID, description="the case to add to; none: open a new case")
    title: Annotated[str, Field(min_length=1, max_length=TITLE), AfterValidator(printable_title)] = (
        "Alert: {alert_title}"
    )
    severity: int | None = Field(None, ge=0, le=10, strict=True)
    tags: list[Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]] = Field(
        default_factory=list, max_length=32
    )

    @model_validator(mode="after")
    def _new_case_fields_only_for_a_new_case(self) -> AddAlertToCaseParams:
        if self.case_id is not None:
            for name in ("title", "severity", "tags"):
                if name in self.model_fields_set:
                    raise ValueError(f"{name}: only for a new case (leave out case_id)")
        return self


class AddAlertToCase(Action):
    name = "add_alert_to_case"
    summary = "link the alert to a case (case_id), or open a new case holding it"
    permission = "cases:write"
    params = AddAlertToCaseParams

    async def _linked(self, ctx: RunContext, case_id: str) -> list[str]:
        case = await asyncio.to_thread(cases.get_case, ctx.engine, case_id)
        if case is None:
            raise ActionError(f"case {case_id} does not exist")
        return list(case["alert_ids"])

    def _new_case(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        alert = ctx.alert
        return {
            "title": render(params.title, alert, TITLE).strip() or alert["id"],
            "description": f"Opened by a playbook for alert {alert['id']}.",
            "severity": alert["severity"] if params.severity is None else params.severity,
            "status": "open",
            "assignee": None,
            "tags": list(dict.fromkeys(params.tags)),
            "alert_ids": [alert["id"]],
        }

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        if params.case_id is None:
            ctx.case_planned, ctx.case_id = True, None
            new = self._new_case(ctx, params)
            return {"case_id": None, "created": True, "case": {k: new[k] for k in ("title", "severity", "tags")}}
        linked = await self._linked(ctx, params.case_id)
        ctx.case_id, ctx.case_planned = params.case_id, False
        return {"case_id": params.case_id, "created": False, "linked": ctx.alert["id"] not in linked}

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        if params.case_id is None:
            try:
                case_id = await asyncio.to_thread(
                    cases.create_case, ctx.engine, self._new_case(ctx, params), ctx.author
                )
            except cases.UnknownAlerts:
                raise ActionError(f"alert {ctx.alert['id']} no longer exists") from None
            ctx.case_id = case_id
            return {"case_id": case_id, "created": True, "linked": True}
        ctx.case_id = params.case_id
        try:
            linked = await asyncio.to_thread(
                cases.link_alert,
                ctx.engine,
                params.case_id,
                ctx.alert["id"],
                ctx.author,
                "Alert added by a playbook",
                MAX_ALERTS,
            )
        except cases.UnknownAlerts as exc:
            raise ActionError(f"alerts no longer exist: {', '.join(exc.ids[:5])}") from None
        except cases.CaseFull:
            raise ActionError(f"case {params.case_id} already holds {MAX_ALERTS} alerts, the most it may") from None
        if linked is None:
            raise ActionError(f"case {params.case_id} does not exist")
        return {"case_id": params.case_id, "created": False, "linked": linked}
