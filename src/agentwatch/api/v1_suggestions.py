"""``/api/v1/sigma/rule-suggestions``: patterns of true-positive feedback, and Sigma rules
drafted for them by the LLM backend (Seerflow's rule suggestions).

``GET`` lists the eligible patterns (:mod:`agentwatch.detect.suggestions`); ``POST
.../{pattern_key}`` answers the kept draft of a pattern, or drafts one
(:mod:`agentwatch.detect.suggestion_draft`): 404 when the pattern is not (or no longer)
eligible, 503 when the backend is off, 502 when it failed. ``DELETE`` drops the kept draft.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts.explain import ExplainError, LlmFailed, LlmUnavailable
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.detect import suggestion_draft as drafts
from agentwatch.detect.suggestions import BadPatternKey, eligible_patterns, find_pattern, parse_pattern_key
from agentwatch.keyed_locks import KeyedLocks

router = APIRouter(prefix="/api/v1/sigma", tags=["rules"])

EVIDENCE = {"alerts:read": "the patterns and drafts quote alerts, their feedback and events"}


def _key(pattern_key: str) -> str:
    try:
        parse_pattern_key(pattern_key)
    except BadPatternKey as exc:
        raise InvalidRequest(str(exc)) from None
    return pattern_key


@router.get("/rule-suggestions", dependencies=[require("rules:read", also=EVIDENCE), only_query("limit")])
async def list_suggestions(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Patterns eligible for drafting, most true positives first; ``drafted`` when a draft is kept."""
    aw = request.app.state.aw
    min_tp = aw.settings.detection.rule_suggestion_min_tp
    patterns, read = await run_in_threadpool(eligible_patterns, aw.engine, min_tp)
    shown = patterns[:limit]
    kept = await run_in_threadpool(drafts.kept_for, aw.engine, [p.key for p in shown], time.time())
    return {
        "suggestions": [{**p.as_json(), "drafted": p.key in kept} for p in shown],
        "total": len(patterns),
        "min_tp": min_tp,
        "feedback_read": read,
    }


def _drafter(aw: Any) -> KeyedLocks:
    """One draft at a time per pattern: a second request waits and answers the first's draft."""
    found = aw.__dict__.get("rule_drafts")
    if found is None:
        found = aw.rule_drafts = KeyedLocks()
    return found


@router.post("/rule-suggestions/{pattern_key:path}", dependencies=[require("rules:write", also=EVIDENCE), only_query()])
async def draft_rule(request: Request, pattern_key: str) -> dict[str, Any]:
    """The pattern's kept draft (``cached: true``), else a new one from the LLM backend."""
    key = _key(pattern_key)
    aw = request.app.state.aw
    llm = aw.settings.llm
    if not llm.enabled:
        raise Unavailable("llm: disabled (set llm.enabled, llm.base_url and llm.model to draft rules)")
    min_tp = aw.settings.detection.rule_suggestion_min_tp
    async with _drafter(aw).hold(key):
        pattern = await run_in_threadpool(find_pattern, aw.engine, key, min_tp)
        if pattern is None:
            raise NotFound(
                f"no eligible pattern {key!r} (it needs at least {min_tp} true positives, more than false ones)",
                {"pattern_key": key},
            )
        entry = await run_in_threadpool(drafts.stored, aw.engine, key, time.time())
        if entry is not None:
            return drafts.answer(entry, was_cached=True)
        shown = await run_in_threadpool(drafts.evidence, aw.engine, pattern)
        detection = aw.components.get("detection")
        try:
            entry = await drafts.draft(aw.engine, llm, detection.engine if detection else None, pattern, shown)
        except LlmUnavailable as exc:
            raise Unavailable(str(exc), {"pattern_key": key}) from None
        except (LlmFailed, ExplainError) as exc:
            raise ApiError(str(exc), {"pattern_key": key}, status=502, code="BAD_GATEWAY") from None
    return drafts.answer(entry, was_cached=False)


@router.delete(
    "/rule-suggestions/{pattern_key:path}",
    status_code=204,
    dependencies=[require("rules:write"), only_query()],
)
async def forget_draft(request: Request, pattern_key: str) -> Response:
    """Drop the pattern's kept draft (the next ``POST`` drafts anew); 404 when none is kept."""
    key = _key(pattern_key)
    aw = request.app.state.aw
    if not await run_in_threadpool(drafts.forget, aw.engine, key):
        raise NotFound("no kept draft for this pattern", {"pattern_key": key})
    return Response(status_code=204)
