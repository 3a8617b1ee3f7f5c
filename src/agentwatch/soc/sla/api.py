"""``/api/v1/sla``: the alert targets of each severity band (AiSOC's ``/sla/configs``) and the
breaches the SLA watch recorded (``/sla/events``)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, NotFound
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.security import principal_name, require
from agentwatch.api.text_rules import ALERT_ID_RE
from agentwatch.soc.sla import evaluate, store
from agentwatch.soc.sla.bands import BAND_IDS, MAX_ACKNOWLEDGE_MINUTES, MAX_RESOLVE_MINUTES

router = APIRouter(prefix="/api/v1/sla", tags=["sla"])

BandId = Literal["critical", "high", "medium", "low"]
assert set(BandId.__args__) == set(BAND_IDS)  # type: ignore[attr-defined]


class TargetChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    acknowledge_minutes: int | None = Field(
        None, ge=1, le=MAX_ACKNOWLEDGE_MINUTES, strict=True, description="minutes an alert may stay open"
    )
    resolve_minutes: int | None = Field(
        None,
        ge=1,
        le=MAX_RESOLVE_MINUTES,
        strict=True,
        description="minutes an alert may stay unclosed; at least acknowledge_minutes",
    )
    enabled: bool | None = Field(None, strict=True, description="false: the band records no new breach")


@router.get("/configs", dependencies=[require("alerts:read"), only_query()])
async def list_configs(request: Request) -> dict[str, Any]:
    """The target of each severity band (critical 9-10, high 7-8, medium 4-6, low 0-3)."""
    return {"configs": await run_in_threadpool(store.list_configs, request.app.state.aw.engine)}


@router.put(
    "/configs/{config_id}",
    dependencies=[require("settings:write"), only_query()],
    openapi_extra=json_body_doc(TargetChange),
)
async def put_config(request: Request, config_id: str) -> dict[str, Any]:
    """Change a band's target (any of its three fields); a limit whose value changes judges
    alerts from now on (``acknowledge_effective_at``, ``resolve_effective_at``)."""
    if config_id not in BAND_IDS:
        raise NotFound(f"config_id: must be one of {', '.join(BAND_IDS)}", {"config_id": config_id[:64]})
    body = await read_model(request, TargetChange, 4 * 1024)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    for name, value in changes.items():
        if value is None:
            raise InvalidRequest(f"{name}: must not be null")
    if not changes:
        raise InvalidRequest("body: give acknowledge_minutes, resolve_minutes and/or enabled")
    aw = request.app.state.aw
    # the breaches already due under the current targets are recorded first, with them: the
    # change moves the start of each limit whose value it changes (both when it enables the
    # band), after which a clock of that kind stopped before it (a late acknowledgement no
    # pass saw yet) is not judged at all. Not when the band is being disabled: from then on
    # it records nothing
    if changes.get("enabled", True):
        sla = aw.settings.sla
        await run_in_threadpool(evaluate.sweep, aw.engine, time.time(), sla.max_age_days * 86_400.0, sla.notifying)
    try:
        doc = await run_in_threadpool(store.change, aw.engine, config_id, changes, principal_name(request))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    request.state.audit_details = {"changed": sorted(changes)}
    return doc


@router.get(
    "/events",
    dependencies=[
        require("alerts:read"),
        only_query("kind", "band", "state", "alert_id", "since", "until", "limit", "cursor"),
    ],
)
async def list_events(
    request: Request,
    kind: Literal["acknowledge", "resolve"] | None = None,
    band: BandId | None = None,
    state: Literal["running", "ended"] | None = None,
    alert_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=64, description="breached at or after (RFC 3339)")] = None,
    until: Annotated[str | None, Query(max_length=64, description="breached before (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
) -> dict[str, Any]:
    """Recorded breaches, the latest first: running ones (the alert is still not acknowledged or
    closed; ``elapsed_s`` grows) and ended ones; ``next_cursor`` goes on from the last one."""
    if alert_id is not None and ALERT_ID_RE.fullmatch(alert_id) is None:
        raise InvalidRequest("alert_id: must be 1-64 letters, digits or dashes")
    q = store.EventQuery(
        kind=kind,
        band=band,
        state=state,
        alert_id=alert_id,
        since=parse_since(since, "since"),
        until=parse_since(until, "until"),
        limit=limit,
    )
    if q.since is not None and q.until is not None and q.until <= q.since:
        raise InvalidRequest("until: must be later than since")
    q.cursor = keyset_position(cursor, 36)
    rows, nxt = await run_in_threadpool(store.list_events, request.app.state.aw.engine, q)
    return {"events": rows, "next_cursor": nxt}
