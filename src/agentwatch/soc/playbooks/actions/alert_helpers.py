"""Reading and changing the run's alert, shared by the alert actions."""

from __future__ import annotations

import asyncio
from typing import Any

from agentwatch.alerts import recorder
from agentwatch.detect import queries
from agentwatch.soc.playbooks.actions.base import ActionError, RunContext


async def current(ctx: RunContext) -> dict[str, Any]:
    """The alert as stored now (an earlier step may have changed it); ActionError when gone."""
    doc = await asyncio.to_thread(queries.get_alert, ctx.engine, ctx.alert["id"])
    if doc is None:
        raise ActionError(f"alert {ctx.alert['id']} no longer exists")
    return doc


async def change(ctx: RunContext, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` as ``PATCH /api/v1/alerts/{id}`` does, and tell live clients."""
    if not await asyncio.to_thread(recorder.change_alert, ctx.engine, ctx.alert["id"], changes):
        raise ActionError(f"alert {ctx.alert['id']} no longer exists")
    doc = await current(ctx)
    ctx.aw.hub.publish("alert", {k: v for k, v in doc.items() if k not in ("events", "feedback")})
    return doc
