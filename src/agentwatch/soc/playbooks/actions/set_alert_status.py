"""``set_alert_status``: acknowledge, close or reopen the run's alert."""

from __future__ import annotations

from typing import Any

from agentwatch.alerts.model import Status
from agentwatch.soc.playbooks.actions import alert_helpers
from agentwatch.soc.playbooks.actions.base import Action, Params, RunContext


class SetAlertStatusParams(Params):
    status: Status


class SetAlertStatus(Action):
    name = "set_alert_status"
    summary = "set the alert's status (open, acknowledged, closed)"
    permission = "alerts:write"
    params = SetAlertStatusParams

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        now = (await alert_helpers.current(ctx))["status"]
        return {
            "alert_id": ctx.alert["id"],
            "status": {"from": now, "to": params.status},
            "changes": now != params.status,
        }

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        before = (await alert_helpers.current(ctx))["status"]
        after = (await alert_helpers.change(ctx, {"status": params.status}))["status"]
        return {"alert_id": ctx.alert["id"], "status": {"from": before, "to": after}}
