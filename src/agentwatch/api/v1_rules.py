"""``/api/v1/rules``: AiSOC's rule catalogue, a second face of the one engine's rule store.

The rules listed, created, replaced, deleted, enabled and disabled here are the ones
``/api/v1/sigma/rules`` shows and the running engine matches: a rule created here is a
Sigma upload (same reader, ReDoS guard, limits and ``dry_run``), a flag set here is the
flag the Sigma face sets. Bundled rules (ATR, the agentwatch pack, built-in detectors,
Sigma directories) can be enabled and disabled but not replaced or deleted (409 says
why). Before answering, the node brings its engine in line with the store, so a change
made through another node is seen at once (:mod:`agentwatch.detect.rule_sync`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import keyset_position, only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import require
from agentwatch.api.v1_sigma import MAX_UPLOAD, RULE_ID, UPLOAD_BODY_BYTES, engine_of
from agentwatch.detect import rule_catalog, rule_edit
from agentwatch.detect.engine import DetectionEngine, RuleConflict, RuleInfo, SigmaUnavailable, StoreFull, sigma_module
from agentwatch.detect.proposals import store as proposal_store
from agentwatch.detect.rule_sync import RuleSync, rule_sync_of

router = APIRouter(prefix="/api/v1", tags=["rules"])

SOURCE_PATTERN = "^(" + "|".join(rule_catalog.SOURCES) + ")$"
LEVEL_PATTERN = "^(" + "|".join(rule_catalog.LEVELS) + ")$"


def _synced(request: Request) -> tuple[DetectionEngine, RuleSync]:
    engine = engine_of(request)
    return engine, rule_sync_of(request.app.state.aw)


async def synced_rule_engine(request: Request) -> tuple[DetectionEngine, RuleSync]:
    """The node's detection engine, brought in line with the rule store first (a change made
    through another node is seen), and its rule sync (to mark a revision this node wrote)."""
    engine, sync = _synced(request)
    await run_in_threadpool(sync.sync)
    return engine, sync


def _check_id(rule_id: str) -> None:
    if not RULE_ID.fullmatch(rule_id):
        raise InvalidRequest("rule_id: must be 1-256 letters, digits or . _ : -")


def _info(engine: DetectionEngine, rule_id: str) -> RuleInfo:
    info = engine.infos.get(rule_id)
    if info is None:
        raise NotFound("rule not found", {"rule_id": rule_id})
    return info


async def _doc(engine: DetectionEngine, info: RuleInfo, *, full: bool = False) -> dict[str, Any]:
    counts = await run_in_threadpool(engine.fire_counts)
    doc = rule_catalog.rule_doc(info, counts.get(info.id, 0))
    if full:
        doc["yaml"] = info.text()
    return doc


async def run_rule_change(fn: Callable[[], Any]) -> Any:
    """Run the rule change ``fn`` in a worker thread; its result, or its error as the API answer
    the Sigma upload gives (409 conflict or refusal, 422 invalid rule, 507 store full, 404, 503)."""
    sigma = sigma_module()
    try:
        return await run_in_threadpool(fn)
    except SigmaUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except RuleConflict as exc:
        raise Conflict(str(exc), {"rule_id": exc.rule_id}) from None
    except rule_edit.Refused as exc:
        raise Conflict(str(exc), {"rule_id": exc.rule_id}) from None
    except rule_edit.Mismatch as exc:
        raise ApiError(str(exc), status=422, code="INVALID_RULE") from None
    except StoreFull as exc:
        raise ApiError(str(exc), status=507, code="INSUFFICIENT_STORAGE") from None
    except KeyError as exc:
        raise NotFound("rule not found", {"rule_id": str(exc.args[0]) if exc.args else ""}) from None
    except Exception as exc:
        if sigma is not None and isinstance(exc, sigma.SigmaLoadError):
            raise ApiError(
                f"yaml: {exc.message}",
                {"line": exc.line, "column": exc.column, "message": exc.message},
                status=422,
                code="INVALID_RULE",
            ) from None
        raise


@router.get(
    "/rules",
    dependencies=[
        require("rules:read"),
        only_query("source", "enabled", "level", "severity", "tactic", "technique", "q", "limit", "cursor"),
    ],
)
async def list_rules(
    request: Request,
    source: Annotated[str | None, Query(pattern=SOURCE_PATTERN, description="format, user or bundled")] = None,
    enabled: bool | None = None,
    level: Annotated[str | None, Query(pattern=LEVEL_PATTERN)] = None,
    severity: Annotated[int | None, Query(ge=0, le=10, description="minimum severity (0-10)")] = None,
    tactic: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z _-]+$")] = None,
    technique: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.]+$")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=256, description="substring of id, title or description")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """Every rule of the engine (ordered by format, then id); filters combine with AND."""
    after = keyset_position(cursor, 256)
    engine, _ = await synced_rule_engine(request)
    flt = rule_catalog.RuleFilter(source, enabled, level, severity, tactic, technique, q)
    rules = await run_in_threadpool(engine.rules)
    chosen, total, nxt = rule_catalog.page(rules, flt, limit, after)
    counts = await run_in_threadpool(engine.fire_counts)
    items = [rule_catalog.rule_doc(r, counts.get(r.id, 0)) for r in chosen]
    return {"rules": items, "meta": {"total": total, "limit": limit}, "next_cursor": nxt}


@router.get("/rules/{rule_id}", dependencies=[require("rules:read")])
async def get_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """One rule with its YAML."""
    _check_id(rule_id)
    engine, _ = await synced_rule_engine(request)
    return await _doc(engine, _info(engine, rule_id), full=True)


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(min_length=1, max_length=MAX_UPLOAD, description="Sigma rule YAML (one or more documents)")
    dry_run: bool = Field(False, description="validate only; nothing is stored")
    enabled: bool = Field(True, description="whether the new rules match from the start")


@router.post("/rules", status_code=201, dependencies=[require("rules:write")], openapi_extra=json_body_doc(RuleCreate))
async def create_rule(request: Request) -> Any:
    """Store a Sigma rule (201), or only validate it with ``dry_run`` (200)."""
    body = await read_model(request, RuleCreate, UPLOAD_BODY_BYTES)
    engine, _ = await synced_rule_engine(request)
    if body.enabled or body.dry_run:
        infos = await run_rule_change(lambda: engine.upload_sigma(body.yaml, dry_run=body.dry_run))
    else:  # stored disabled from the start: never live, on any node, for a moment
        infos = await run_rule_change(lambda: rule_edit.create_disabled(engine, body.yaml))
    rules = [{**rule_catalog.rule_doc(i, 0), "yaml": i.yaml} for i in infos]
    return JSON({"rules": rules, "dry_run": body.dry_run}, status_code=200 if body.dry_run else 201)


class RuleReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    yaml: str = Field(min_length=1, max_length=MAX_UPLOAD, description="the new Sigma YAML; must define this rule")
    dry_run: bool = Field(False, description="validate only; nothing is changed")


async def keep_the_decision(request: Request, rule_id: str) -> None:
    """A rule promoted through a detection proposal went live on a second person's decision:
    replacing or deleting it needs that same permission, ``rules:approve``."""
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.can("rules:approve"):
        return
    if await run_in_threadpool(proposal_store.promoted, request.app.state.aw.engine, rule_id):
        raise ApiError(
            f"rule_id: {rule_id!r} went live through a detection proposal; changing or deleting it "
            "needs permission 'rules:approve'",
            status=403,
        )


@router.put("/rules/{rule_id}", dependencies=[require("rules:write")], openapi_extra=json_body_doc(RuleReplace))
async def replace_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """Replace an uploaded rule's YAML (the whole file it was uploaded in); 409 for a bundled rule."""
    _check_id(rule_id)
    body = await read_model(request, RuleReplace, UPLOAD_BODY_BYTES)
    if not body.dry_run:
        await keep_the_decision(request, rule_id)
    engine, sync = await synced_rule_engine(request)
    infos, removed, revision = await run_rule_change(
        lambda: rule_edit.replace(engine, rule_id, body.yaml, dry_run=body.dry_run)
    )
    if revision is not None:
        sync.mark(revision)
    counts = await run_in_threadpool(engine.fire_counts)
    rules = []
    for i in infos:
        live = engine.infos.get(i.id, i) if not body.dry_run else i
        rules.append({**rule_catalog.rule_doc(live, counts.get(i.id, 0)), "yaml": i.yaml})
    return {"rules": rules, "removed": removed, "dry_run": body.dry_run}


@router.delete("/rules/{rule_id}", status_code=204, dependencies=[require("rules:write")])
async def delete_rule(request: Request, rule_id: str) -> Response:
    """Delete an uploaded rule (204); 409 for a bundled rule or one sharing its file with others."""
    _check_id(rule_id)
    await keep_the_decision(request, rule_id)
    engine, sync = await synced_rule_engine(request)
    revision = await run_rule_change(lambda: rule_edit.remove(engine, rule_id))
    sync.mark(revision)
    return Response(status_code=204)


async def _set(request: Request, rule_id: str, enabled: bool) -> dict[str, Any]:
    _check_id(rule_id)
    engine, _ = await synced_rule_engine(request)
    _info(engine, rule_id)
    info = await run_rule_change(lambda: rule_edit.set_flag(engine, rule_id, enabled))
    return await _doc(engine, info)


@router.post("/rules/{rule_id}/enable", dependencies=[require("rules:write")])
async def enable_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """Enable a rule (any origin); the flag is stored, survives restarts and reaches every node."""
    return await _set(request, rule_id, True)


@router.post("/rules/{rule_id}/disable", dependencies=[require("rules:write")])
async def disable_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """Disable a rule (any origin); it stops matching on every node."""
    return await _set(request, rule_id, False)
