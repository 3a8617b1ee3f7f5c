"""``/api/v1/alerts/{alert_id}/explain`` and ``/explanation``: LLM explanations of alerts (Seerflow).

``POST .../explain`` (alerts:write: it spends the backend's tokens) answers the cached
explanation while it is fresh, else asks the backend (:mod:`agentwatch.alerts.explain`);
``GET .../explanation`` (alerts:read) answers the cached one only and never asks the backend,
and never one that no longer describes the alert (made before the alert grew, or by another
model): an analyst is not shown an explanation of a different alert state as if current.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts import explain, explanation_cache
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound, Unavailable
from agentwatch.api.query import only_query
from agentwatch.api.security import require
from agentwatch.api.text_rules import ALERT_ID_RE
from agentwatch.detect import queries

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _check_id(alert_id: str) -> None:
    if ALERT_ID_RE.fullmatch(alert_id) is None:
        raise InvalidRequest("alert_id: must be 1-64 letters, digits or dashes")


@router.post("/alerts/{alert_id}/explain", dependencies=[require("alerts:write"), only_query()])
async def explain_alert(request: Request, alert_id: str) -> dict[str, Any]:
    """The alert's explanation in Markdown: the cached one while fresh (``cached: true``), else a
    new one from the LLM backend. 503 when explanations are off, 502 when the backend failed."""
    _check_id(alert_id)
    aw = request.app.state.aw
    llm = aw.settings.llm
    if not llm.enabled:
        raise Unavailable("llm: disabled (set llm.enabled, llm.base_url and llm.model to explain alerts)")
    alert = await run_in_threadpool(queries.get_alert, aw.engine, alert_id)
    if alert is None:
        raise NotFound("alert not found", {"alert_id": alert_id})
    try:
        return await explain.explainer_of(aw).explain(llm, alert)
    except explain.AlertGone:
        raise NotFound("alert not found", {"alert_id": alert_id}) from None
    except explain.LlmUnavailable as exc:
        raise Unavailable(str(exc), {"alert_id": alert_id}) from None
    except explain.LlmFailed as exc:
        raise ApiError(str(exc), {"alert_id": alert_id}, status=502, code="BAD_GATEWAY") from None


WHY_NOT = {
    "expired": "the explanation of this alert expired (POST .../explain makes a new one)",
    "alert_changed": (
        "the explanation of this alert is out of date: the alert changed since it was made "
        "(POST .../explain makes a new one)"
    ),
    "model_changed": (
        "the explanation of this alert is out of date: it was made by another model than llm.model "
        "(POST .../explain makes a new one)"
    ),
}


@router.get("/alerts/{alert_id}/explanation", dependencies=[require("alerts:read"), only_query()])
async def get_explanation(request: Request, alert_id: str) -> dict[str, Any]:
    """The cached explanation (``cached: true``); 404 when the alert has none, or it expired, or
    it is out of date (the alert changed since, or ``llm.model`` did)."""
    _check_id(alert_id)
    aw = request.app.state.aw
    alert = await run_in_threadpool(queries.get_alert, aw.engine, alert_id)
    if alert is None:
        raise NotFound("alert not found", {"alert_id": alert_id})
    entry, why = await explain.explainer_of(aw).stored(aw.settings.llm, alert)
    if entry is None:
        raise NotFound("no explanation of this alert (POST .../explain makes one)", {"alert_id": alert_id})
    if why is not None:
        raise NotFound(WHY_NOT[why], {"alert_id": alert_id, "reason": why})
    return explanation_cache.answer(entry, was_cached=True)
