"""``/api/v1/health``, ``/api/v1/stats`` and ``/api/v1/config`` (Seerflow's System routes).

Health is 503 when any component reports itself degraded (or the store does not
answer); the body always carries per-component detail plus the detection and
feedback extras. Config shows the running settings with every secret masked.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select, text
from starlette.concurrency import run_in_threadpool

from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, require
from agentwatch.detect.schema import alert_feedback
from agentwatch.store import counters
from agentwatch.store.alerts_schema import alerts

router = APIRouter(prefix="/api/v1", tags=["system"])

BAD = ("degraded", "error", "failed", "down", "unhealthy")


def health_fragment(aw: Any) -> dict[str, Any]:
    """The detection part of the shared ``/api/health`` document."""
    comp = aw.components.get("detection")
    return {"detection": comp.health()} if comp is not None else {}


def _store_and_feedback(engine: Any) -> tuple[dict[str, Any], dict[str, int]]:
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            rows = conn.execute(
                select(alert_feedback.c.feedback, func.count()).group_by(alert_feedback.c.feedback)
            ).all()
    except Exception as exc:
        return {"status": "degraded", "error": type(exc).__name__}, {}
    fb = {k: int(n) for k, n in rows}
    return {
        "status": "ok",
        "dialect": engine.dialect.name,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }, {"tp": fb.get("tp", 0), "fp": fb.get("fp", 0)}


def _components_health(aw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, comp in aw.components.items():
        doc = _component_health(comp)
        if doc is not None:
            out[name] = doc
    return out


def _component_health(comp: Any) -> dict[str, Any] | None:
    fn = getattr(comp, "health", None)
    if not callable(fn):
        return None
    try:
        doc = fn()
    except Exception as exc:
        return {"status": "degraded", "error": type(exc).__name__}
    if not isinstance(doc, dict):
        return None
    return doc


@router.get("/health", dependencies=[require(PUBLIC)])
async def health(request: Request) -> JSON:
    aw = request.app.state.aw
    store, feedback = await run_in_threadpool(_store_and_feedback, aw.engine)
    running = aw.pipeline._worker is not None
    components: dict[str, Any] = {
        "store": store,
        "pipeline": {
            "status": "ok" if running else "degraded",
            "running": running,
            "queue_depth": aw.pipeline.pending,
            "committed": aw.pipeline.committed_total,
        },
        "live": {"status": "ok", "subscribers": aw.hub.subscribers},
    }
    # on a worker thread: a part may read the store for its figures (the scanner's are shared)
    components.update(await run_in_threadpool(_components_health, aw))
    degraded = sorted(n for n, c in components.items() if str(c.get("status", "ok")).lower() in BAD)
    detection = components.get("detection", {})
    body = {
        "status": "degraded" if degraded else "ok",
        "version": aw.version,
        "uptime_seconds": int(time.time() - aw.started_at),
        "degraded": degraded,
        "components": components,
        "detection": {
            "status": detection.get("status"),
            "rules": detection.get("rules", {}),
            "disabled": detection.get("disabled", 0),
            "findings": detection.get("findings", 0),
        },
        "feedback": feedback,
    }
    return JSON(body, status_code=503 if degraded else 200)


def _metric_values(registry: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name.endswith(("_created", "_bucket")):
                continue
            if s.labels:
                out.setdefault(s.name, {})[",".join(s.labels.values())] = s.value
            else:
                out[s.name] = s.value
    return out


def _server_gauge(aw: Any, values: dict[str, Any], name: str, own: int) -> int:
    """``own`` (this process's figure), or with several processes the sum of theirs, which each
    writes every second."""
    return int(values.get(name, own)) if aw.settings.processes > 1 else own


def _alert_counts(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        by_type = dict(conn.execute(select(alerts.c.type, func.count()).group_by(alerts.c.type)).all())
        by_status = dict(conn.execute(select(alerts.c.status, func.count()).group_by(alerts.c.status)).all())
    return {
        "total": int(sum(by_type.values())),
        "by_type": {k: int(v) for k, v in sorted(by_type.items())},
        "by_status": {k: int(v) for k, v in sorted(by_status.items())},
    }


@router.get("/stats", dependencies=[require("events:read")])
async def stats(request: Request) -> dict[str, Any]:
    """Pipeline counters (received, committed, dropped by reason...), live-stream and detection figures."""
    aw = request.app.state.aw
    m = _metric_values(aw.metrics.exposed())  # every process's, when the server runs several
    types = (await run_in_threadpool(counters.read, aw.engine, ("event_type",))).family("event_type")
    alert_counts = await run_in_threadpool(_alert_counts, aw.engine)
    comp = aw.components.get("detection")
    return {
        "pipeline": {
            "received": m.get("agentwatch_events_received_total", {}),
            "rejected": m.get("agentwatch_events_rejected_total", {}),
            "committed": int(m.get("agentwatch_events_committed_total", 0)),
            "duplicates": int(m.get("agentwatch_events_duplicate_total", 0)),
            "filtered": int(m.get("agentwatch_events_filtered_total", 0)),
            "dropped": m.get("agentwatch_events_dropped_total", {}),
            "queue_depth": _server_gauge(aw, m, "agentwatch_pipeline_queue_depth", aw.pipeline.pending),
            "events_per_second": aw.pipeline.events_per_second(),
            "findings": m.get("agentwatch_findings_total", {}),
        },
        # at most counters.TOP_N types (the largest); by_type_other: what the others add up to
        "events": {"by_type": {k: int(v) for k, v in sorted(types.top.items())}, "by_type_other": int(types.rest)},
        "alerts": alert_counts,
        "live": {
            "subscribers": _server_gauge(aw, m, "agentwatch_live_clients", aw.hub.subscribers),
            "published": int(m.get("agentwatch_live_published_total", 0)),
            "dropped": int(m.get("agentwatch_live_dropped_total", 0)),
        },
        "detection": comp.engine.health() if comp is not None else None,
        "outputs": {
            "invalid": comp.output_errors if comp is not None else [],
            "recent_deliveries": comp.deliveries[-20:] if comp is not None else [],
        },
        "uptime_seconds": int(time.time() - aw.started_at),
    }


@router.get("/config", dependencies=[require("settings:read")])
async def config(request: Request) -> dict[str, Any]:
    """The running configuration with every secret (and credentials inside URLs) masked."""
    settings = request.app.state.aw.settings
    return settings.masked()
