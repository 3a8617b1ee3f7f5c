"""``/api/v1/detections``: AiSOC's detection events (rule hits) and their counts.

``GET`` lists the alerts rules raised (the engine's, and those recorded for outside
engines), newest first by creation, with AiSOC's ``cursor``/``next_cursor``. ``POST`` records a
detection an outside engine made: it becomes an alert through the alert recorder (dedup,
live stream, outputs), of type and source ``external``. ``GET /stats`` counts a window.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.model import SEVERITY_WORDS
from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import InvalidRequest, Unavailable
from agentwatch.api.ingest import submit_decoded
from agentwatch.api.oisp import parse_since
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import deny, require
from agentwatch.detect import detection_record, detections
from agentwatch.detect.queries import ENTITY_KINDS

router = APIRouter(prefix="/api/v1", tags=["detections"])

RULE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,256}$"
SOURCE_PATTERN = "^(" + "|".join(detections.SOURCES) + ")$"
MAX_HOURS = 720  # the stats window: at most 30 days
BODY_BYTES = 512 * 1024
MAX_AHEAD_S = 86_400.0  # a reported time this far ahead of the clock is refused (it would top every list)


def _pack_ids(request: Request) -> set[str]:
    comp = request.app.state.aw.components.get("detection")
    if comp is None:
        return set()
    engine = comp.engine
    engine.ensure_loaded()
    return {rid for rid, info in engine.infos.items() if info.format == "pack"}


@router.get(
    "/detections",
    dependencies=[
        require("alerts:read"),
        only_query("rule_id", "source", "since", "until", "severity_min", "limit", "cursor"),
    ],
)
async def list_detections(
    request: Request,
    rule_id: Annotated[str | None, Query(pattern=RULE_ID_PATTERN)] = None,
    source: Annotated[str | None, Query(pattern=SOURCE_PATTERN)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    until: Annotated[str | None, Query(max_length=64)] = None,
    severity_min: Annotated[int | None, Query(ge=0, le=10)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> dict[str, Any]:
    """Rule hits, newest first by when each detection was first recorded (a stable order: a rule
    hitting again moves no detection between pages); filters combine with AND."""
    q = detections.DetectionQuery(
        rule_id=rule_id,
        source=source,
        since=parse_since(since, "since"),
        until=parse_since(until, "until"),
        severity_min=severity_min,
        limit=limit,
    )
    q.cursor = keyset_position(cursor, 64)
    pack = await run_in_threadpool(_pack_ids, request)
    rows, total, nxt = await run_in_threadpool(detections.list_detections, request.app.state.aw.engine, q, pack)
    return {"detections": rows, "meta": {"total": total, "limit": limit}, "next_cursor": nxt}


@router.get("/detections/stats", dependencies=[require("alerts:read"), only_query("hours", "top")])
async def detection_stats(
    request: Request,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS, description="window length, ending now")] = 24,
    top: Annotated[int, Query(ge=1, le=100, description="rules listed in by_rule")] = 10,
) -> dict[str, Any]:
    """Counts over the window by rule (top N), severity, source and ATT&CK tactic."""
    pack = await run_in_threadpool(_pack_ids, request)
    return await run_in_threadpool(detections.stats, request.app.state.aw.engine, hours * 3600.0, top, pack)


class EntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal[ENTITY_KINDS]  # type: ignore[valid-type]
    value: str = Field(min_length=1, max_length=512)


class DetectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_id: str = Field(pattern=RULE_ID_PATTERN)
    rule_title: str = Field(min_length=1, max_length=1000)
    severity: int | str = Field(description="0-10, or info/low/medium/high/critical")
    engine: str = Field("external", pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="the outside engine's name")
    event_ids: list[Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,128}$")]] = Field(
        default_factory=list, max_length=100
    )
    event: dict[str, Any] | None = Field(None, description="one OISP event, stored first (needs events:write)")
    entities: list[EntityIn] = Field(default_factory=list, max_length=64)
    time: str | None = Field(None, max_length=64, description="RFC 3339; default: the events' latest time")
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]] = Field(default_factory=list, max_length=64)
    message: str = Field("", max_length=4000)
    dedup_key: str | None = Field(None, min_length=1, max_length=256)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be 0-10 or info/low/medium/high/critical")
        if isinstance(value, int):
            if not 0 <= value <= 10:
                raise ValueError("must be between 0 and 10")
            return value
        if value.lower() not in SEVERITY_WORDS:
            raise ValueError("must be 0-10 or one of " + ", ".join(SEVERITY_WORDS))
        return SEVERITY_WORDS[value.lower()]


async def _store_event(request: Request, event: dict[str, Any]) -> str:
    """Store the embedded event through the pipeline; its id."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and not principal.can("events:write"):
        raise deny(request, 403, "permission 'events:write' required: the detection embeds an event to store")
    aw = request.app.state.aw
    decoded = aw.oisp.decode(orjson.dumps(event), "application/json")
    if decoded.rejected:
        bad = decoded.rejected[0]
        raise InvalidRequest(f"event.{bad.field}: {bad.reason}", [{"field": f"event.{bad.field}", "rule": bad.reason}])
    if not decoded.events:
        raise InvalidRequest("event: no event in it")
    await submit_decoded(request, decoded, "oisp")
    return decoded.events[0].event_id


@router.post(
    "/detections", status_code=201, dependencies=[require("alerts:write")], openapi_extra=json_body_doc(DetectionIn)
)
async def record_detection(request: Request) -> Any:
    """Record an outside engine's detection as an alert: 201 new, 200 merged into a recent one."""
    body = await read_model(request, DetectionIn, BODY_BYTES)
    if not body.event_ids and body.event is None:
        raise InvalidRequest("event_ids: give event_ids or an embedded event (or both)")
    ts = parse_since(body.time, "time")
    if ts is not None and ts > time.time() + MAX_AHEAD_S:
        raise InvalidRequest("time: more than 24 hours in the future")
    ids = list(body.event_ids)
    if body.event is not None:
        ids.insert(0, await _store_event(request, body.event))
    aw = request.app.state.aw
    report = detection_record.Report(
        rule_id=body.rule_id,
        rule_title=body.rule_title,
        severity=int(body.severity),
        engine=body.engine,
        event_ids=ids,
        entities=[(e.type, e.value) for e in body.entities],
        ts=ts,
        tags=body.tags,
        message=body.message,
        dedup_key=body.dedup_key,
    )
    found = await run_in_threadpool(detection_record.stored_events, aw.engine, ids)
    finding = detection_record.finding_of(report, found)
    recorder = getattr(aw, "alerts", None)
    if recorder is None:
        raise Unavailable("alerts: the alert recorder is not running")
    changed = await recorder.record([finding])
    if not changed:  # the same report again: its alert is stored already
        return JSON({"detection": None, "duplicate": True}, status_code=200)
    doc = detections.from_alert(changed[0], detections.EXTERNAL)
    merged = doc["count"] > 1
    return JSON({"detection": doc, "merged": merged, "duplicate": False}, status_code=200 if merged else 201)
