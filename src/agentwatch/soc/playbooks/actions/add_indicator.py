"""``add_indicator``: put an entity of the run's alert into intel as an indicator of compromise.

The first entity of ``entity_type`` whose value is an indicator (an address, a domain, a hash,
...; ``type`` forces the kind) is stored with source ``playbook``, as ``POST /api/v1/intel/iocs``
would store it: the same kind and value again updates the stored indicator. Events naming it
from then on raise ``ioc`` alerts.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from agentwatch.api.text_rules import printable_name
from agentwatch.intel import store as intel
from agentwatch.intel.indicators import BadIndicator, classify, normalize
from agentwatch.intel.matcher import matcher_of
from agentwatch.soc.playbooks.actions.base import Action, ActionError, Params, RunContext

EntityType = Literal["host", "user", "process", "file", "model", "agent"]
Kind = Literal["ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email"]
SOURCE = "playbook"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class AddIndicatorParams(Params):
    entity_type: EntityType = "host"
    type: Kind | None = Field(None, description="the indicator's kind; guessed from the value when left out")
    severity: int | None = Field(None, ge=0, le=10, strict=True, description="intel.default_severity when left out")
    description: Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)] = ""
    tags: list[Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]] = Field(
        default_factory=list, max_length=32
    )
    expires_in_s: int | None = Field(None, ge=60, le=366 * 86_400, strict=True, description="none: never expires")


class AddIndicator(Action):
    name = "add_indicator"
    summary = "add an entity of the alert (entity_type) to intel as an indicator"
    permission = "intel:write"
    params = AddIndicatorParams

    def _indicator(self, ctx: RunContext, params: Any) -> intel.Indicator:
        tried = []
        for ent in ctx.alert.get("entities", []):
            if ent.get("type") != params.entity_type or not isinstance(ent.get("value"), str):
                continue
            try:
                kind = params.type or classify(ent["value"])
                value = normalize(kind, ent["value"])
            except BadIndicator:
                tried.append(ent["value"][:64])
                continue
            severity = ctx.aw.settings.intel.default_severity if params.severity is None else params.severity
            expires = None if params.expires_in_s is None else time.time() + params.expires_in_s
            description = params.description or f"from alert {ctx.alert['id']}: {ctx.alert.get('title', '')}"[:2000]
            return intel.Indicator(
                kind, value, SOURCE, severity, description, list(dict.fromkeys(params.tags)), expires
            )
        why = f" (none of {', '.join(repr(t) for t in tried[:3])} is one)" if tried else ""
        raise ActionError(f"the alert names no {params.entity_type} entity usable as an indicator{why}")

    def _stored(self, ctx: RunContext, ind: intel.Indicator) -> bool:
        with ctx.engine.connect() as conn:
            return bool(intel.existing_digests(conn, [ind.digest]))

    async def preview(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        ind = self._indicator(ctx, params)
        stored = await asyncio.to_thread(self._stored, ctx, ind)
        return {"indicator": {"type": ind.kind, "value": ind.value, "severity": ind.severity}, "created": not stored}

    async def apply(self, ctx: RunContext, params: Any) -> dict[str, Any]:
        ind = self._indicator(ctx, params)
        done = await asyncio.to_thread(intel.add, ctx.engine, [ind], ctx.aw.settings.intel.max_indicators)
        if done is None:
            raise ActionError("intel holds intel.max_indicators indicators already")
        await asyncio.to_thread(matcher_of(ctx.aw).reload)
        return {"indicator": {"type": ind.kind, "value": ind.value, "severity": ind.severity}, "created": done[0] == 1}
