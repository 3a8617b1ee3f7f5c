"""The detection lifecycle part: ``aw.components["detection"]``.

It owns the engine the pipeline runs as a detector, offers the stateless
``evaluate(event)`` used by inline guards, loads the rule sets in the background
at start, and routes every new alert to the configured outputs by severity
(through the shared :mod:`agentwatch.notify` module).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from agentwatch.detect.engine import DetectionEngine
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

log = structlog.get_logger("agentwatch.detect")


def engine_of(aw: Any) -> DetectionEngine:
    """The one engine of this agentwatch (created by whichever factory runs first)."""
    engine = aw.__dict__.get("detection_engine")
    if engine is None:
        engine = DetectionEngine(aw.settings.detection, aw.engine)
        aw.detection_engine = engine
    return engine


class DetectionComponent:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.engine = engine_of(aw)
        self.outputs: list[Any] = []
        self.output_errors: list[str] = []
        self.deliveries: list[dict[str, Any]] = []
        self._loading: asyncio.Task[Any] | None = None
        self._sending: set[asyncio.Task[Any]] = set()
        self._build_outputs()
        aw.alerts.listeners.append(self.route)

    def _build_outputs(self) -> None:
        from agentwatch.notify import build_output

        settings = self.aw.settings.detection
        for i, spec in enumerate(settings.outputs):
            try:
                self.outputs.append(build_output(dict(spec), allow_private=settings.outputs_allow_private))
            except ValueError as exc:
                # a bad output must not stop detection; it is reported in /api/v1/health
                self.output_errors.append(f"detection.outputs[{i}].{exc}")
                log.error("detect.output_invalid", index=i, error=str(exc))

    def evaluate(self, event: Event) -> list[Finding]:
        """Stateless, side-effect-free verdict for one event (see DetectionEngine.evaluate)."""
        return self.engine.evaluate(event)

    async def route(self, alerts: list[dict[str, Any]]) -> None:
        """Alert listener: send new alerts to the outputs whose min_severity they reach."""
        if not self.outputs or not alerts:
            return
        from agentwatch.notify import deliver

        task = asyncio.create_task(deliver(self.outputs, alerts))
        self._sending.add(task)
        task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[Any]) -> None:
        self._sending.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        self.deliveries = [*self.deliveries, *task.result()][-100:]

    async def start(self) -> None:
        self._loading = asyncio.create_task(self._load())

    async def _load(self) -> None:
        """Load the rules; once the bundled ATR set is compiled, alert on what arrived meanwhile."""
        await asyncio.to_thread(self.engine.ensure_loaded)
        while not await asyncio.to_thread(self.engine.atr_ready.wait, 1.0):
            pass  # short waits: a stopping server never has to join a thread blocked on the load
        findings = await asyncio.to_thread(self.engine.drain_backlog)
        if findings:
            await self.aw.alerts.record(findings)

    async def stop(self) -> None:
        if self._sending:
            await asyncio.wait(self._sending, timeout=10)
        if self._loading is not None and not self._loading.done():
            # A rule load in flight holds a database connection in its thread; let it finish
            # (it returns at once when the rules are loaded) so the engine is disposed with
            # every connection back in the pool. Only the wait for the ATR build is cut short.
            await asyncio.to_thread(self.engine.ensure_loaded)
            self._loading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loading

    def health(self) -> dict[str, Any]:
        doc = self.engine.health()
        failed = [d for d in self.deliveries[-20:] if not d.get("ok")]
        # counts only: /api/v1/health is public, the reasons (with hosts) are in /api/v1/stats
        doc["outputs"] = {
            "configured": len(self.outputs),
            "invalid": len(self.output_errors),
            "recent_failures": len(failed),
        }
        if self.output_errors:
            doc["status"] = "degraded"
        return doc
