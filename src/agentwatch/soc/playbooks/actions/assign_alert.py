"""``assign_alert``: give the run's alert to an analyst (or unassign it with ``null``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field

from agentwatch.alerts.model import MAX_ASSIGNEE
from agentwatch.api.text_rules import assignee_name
from agentwatch.soc.playbooks.actions import alert_helpers
from agentwatch.soc.playbooks.actions.base import Action, Params, RunContext


class AssignAlertParams(Params):
    assignee: Annotated[str, Field(min_length=1, max_length=MAX_ASSIGNEE), AfterValidator(assignee_name)] | None


class AssignAlert(Action):
    name = "assign_alert"
    summary = "assign the alert to an analyst (null: unassign)"
    permission = "alerts:write"
    params = AssignAlertParams

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        now = (await alert_helpers.current(ctx))["assignee"]
        return {
            "alert_id": ctx.alert["id"],
            "assignee": {"from": now, "to": params.assignee},
            "changes": now != params.assignee,
        }

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        before = (await alert_helpers.current(ctx))["assignee"]
        after = (await alert_helpers.change(ctx, {"assignee": params.assignee}))["assignee"]
        return {"alert_id": ctx.alert["id"], "assignee": {"from": before, "to": after}}
