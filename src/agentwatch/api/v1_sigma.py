"""``/api/v1/sigma/rules``: the rule catalogue with 24 h fire counts, YAML, timelines, enable flags, uploads.

The catalogue lists every rule of the one detection engine (Sigma, ATR, the
agentwatch pack, built-in), each with its ``format``; uploads are Sigma YAML.
Upload answers: 201 stored, 200 for a ``dry_run`` that validated, 409 when a
rule id exists, 422 with the line and column of the problem, 507 when the upload
store is full.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import require
from agentwatch.detect import rule_edit
from agentwatch.detect.engine import DetectionEngine, RuleConflict, RuleInfo, SigmaUnavailable, StoreFull, sigma_module
from agentwatch.detect.rule_sync import rule_sync_of

router = APIRouter(prefix="/api/v1/sigma", tags=["rules"])

RULE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,256}$")
MAX_UPLOAD = 256 * 1024


def engine_of(request: Request) -> DetectionEngine:
    comp = request.app.state.aw.components.get("detection")
    if comp is None:
        raise Unavailable("detection: the detection engine is not running")
    return comp.engine


async def synced_engine(request: Request) -> DetectionEngine:
    """The engine, first brought up to what the store holds (another node's uploads, deletes
    and flags), as the AiSOC face does: a read never lags the periodic comparison."""
    engine = engine_of(request)
    await run_in_threadpool(rule_sync_of(request.app.state.aw).sync)
    return engine


def _find(engine: DetectionEngine, rule_id: str) -> RuleInfo:
    if not RULE_ID.fullmatch(rule_id):
        raise InvalidRequest("rule_id: must be 1-256 letters, digits or . _ : -")
    engine.ensure_loaded()
    info = engine.infos.get(rule_id)
    if info is None:
        raise NotFound("rule not found", {"rule_id": rule_id})
    return info


@router.get(
    "/rules", dependencies=[require("rules:read"), only_query("format", "enabled", "level", "q", "page", "limit")]
)
async def list_rules(
    request: Request,
    format: Annotated[Literal["sigma", "atr", "pack", "builtin"] | None, Query()] = None,
    enabled: bool | None = None,
    level: Annotated[str | None, Query(max_length=16, pattern=r"^[a-z]+$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=256, description="substring of id or title")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Every rule (ordered by format, then id) with how often it fired in the last 24 hours."""
    engine = await synced_engine(request)
    rules = await run_in_threadpool(engine.rules)
    if format:
        rules = [r for r in rules if r.format == format]
    if enabled is not None:
        rules = [r for r in rules if r.enabled == enabled]
    if level:
        rules = [r for r in rules if r.level == level]
    if q:
        needle = q.lower()
        rules = [r for r in rules if needle in r.id.lower() or needle in r.title.lower()]
    counts = await run_in_threadpool(engine.fire_counts)
    start = (page - 1) * limit
    items = [{**r.to_json(), "fire_count_24h": counts.get(r.id, 0)} for r in rules[start : start + limit]]
    return {"rules": items, "meta": {"total": len(rules), "page": page, "limit": limit}}


@router.get("/rules/{rule_id}", dependencies=[require("rules:read")])
async def get_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """One rule including its YAML and its matching cost so far."""
    engine = await synced_engine(request)
    info = await run_in_threadpool(_find, engine, rule_id)
    counts = await run_in_threadpool(engine.fire_counts)
    cost = engine.costs().get(rule_id)
    return {**info.to_json(), "yaml": info.text(), "fire_count_24h": counts.get(rule_id, 0), "cost": cost}


@router.get("/rules/{rule_id}/timeline", dependencies=[require("rules:read")])
async def rule_timeline(request: Request, rule_id: str) -> dict[str, Any]:
    """Fires per hour over the last 24 hours (event time), oldest first, zero-filled."""
    engine = engine_of(request)
    await run_in_threadpool(_find, engine, rule_id)
    buckets = await run_in_threadpool(engine.timeline, rule_id)
    return {"rule_id": rule_id, "resolution": "1h", "buckets": buckets, "total": sum(b["count"] for b in buckets)}


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


PATCH_BODY_BYTES = 64 * 1024


@router.patch("/rules/{rule_id}", dependencies=[require("rules:write")], openapi_extra=json_body_doc(RulePatch))
async def patch_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """Enable or disable a rule; the flag is stored and survives restarts."""
    body = await read_model(request, RulePatch, PATCH_BODY_BYTES)
    engine = await synced_engine(request)
    await run_in_threadpool(_find, engine, rule_id)
    try:  # an uploaded rule another node deleted meanwhile: 404, and no flag row left for its id
        info = await run_in_threadpool(rule_edit.set_flag, engine, rule_id, body.enabled)
    except KeyError:
        raise NotFound("rule not found", {"rule_id": rule_id}) from None
    return info.to_json()


class RuleUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(min_length=1, max_length=MAX_UPLOAD)
    dry_run: bool = False


# the JSON text of the upload: room for the longest YAML even with many characters escaped
UPLOAD_BODY_BYTES = 8 * MAX_UPLOAD


@router.post("/rules", status_code=201, dependencies=[require("rules:write")], openapi_extra=json_body_doc(RuleUpload))
async def upload_rule(request: Request) -> Any:
    """Validate a Sigma rule (or a multi-document file) and, unless ``dry_run``, store and enable it."""
    body = await read_model(request, RuleUpload, UPLOAD_BODY_BYTES)
    engine = engine_of(request)
    sigma = sigma_module()
    try:
        infos = await run_in_threadpool(lambda: engine.upload_sigma(body.yaml, dry_run=body.dry_run))
    except SigmaUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except RuleConflict as exc:
        raise Conflict(str(exc), {"rule_id": exc.rule_id}) from None
    except StoreFull as exc:
        raise ApiError(str(exc), status=507, code="INSUFFICIENT_STORAGE") from None
    except Exception as exc:
        if sigma is not None and isinstance(exc, sigma.SigmaLoadError):
            raise ApiError(
                f"yaml: {exc.message}",
                {"line": exc.line, "column": exc.column, "message": exc.message},
                status=422,
                code="INVALID_RULE",
            ) from None
        raise
    doc = {"rules": [{**i.to_json(), "yaml": i.yaml} for i in infos], "dry_run": body.dry_run}
    return JSON(doc, status_code=200 if body.dry_run else 201)
