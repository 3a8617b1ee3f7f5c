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
# Alerts waiting for one output. Each output has its own queue and sender, so a slow or dead
# receiver delays only itself. Per output one delivery runs at a time, of at most
# DELIVERY_BATCH alerts: an alert storm cannot open a connection per batch of findings, and
# what waits past MAX_PENDING_ALERTS is counted as dropped (it stays in the alert store).
MAX_PENDING_ALERTS = 1000
DELIVERY_BATCH = 100


class OutputQueue:
    """The alerts waiting for one output, and the task sending them."""

    def __init__(self, output: Any, record: Any) -> None:
        self.output = output
        self.record = record  # called with each delivery's result
        self.pending: list[dict[str, Any]] = []
        self.dropped = 0
        self.sender: asyncio.Task[Any] | None = None

    def add(self, alerts: list[dict[str, Any]]) -> None:
        room = max(0, MAX_PENDING_ALERTS - len(self.pending))
        if len(alerts) > room:
            self.dropped += len(alerts) - room
            log.warning(
                "detect.output_behind",
                output=getattr(self.output, "name", self.output.kind),
                dropped=len(alerts) - room,
                waiting=len(self.pending),
            )
        self.pending.extend(alerts[:room])
        if self.pending and (self.sender is None or self.sender.done()):
            self.sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        from agentwatch.notify import deliver

        while self.pending:
            batch = self.pending[:DELIVERY_BATCH]
            del self.pending[:DELIVERY_BATCH]
            self.record(await deliver([self.output], batch))


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
        self._build_outputs()
        self.queues = [OutputQueue(output, self._delivered) for output in self.outputs]
        aw.alerts.listeners.append(self.route)

    @property
    def alerts_dropped(self) -> int:
        """Alerts never sent to an output because too many were waiting for it (per output)."""
        return sum(q.dropped for q in self.queues)

    def _delivered(self, results: list[dict[str, Any]]) -> None:
        self.deliveries = [*self.deliveries, *results][-100:]

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
        """Alert listener: queue new alerts for each output whose min_severity they reach."""
        from agentwatch.notify import reaches

        for queue in self.queues:
            chosen = [a for a in alerts if reaches(a, queue.output)]
            if chosen:
                queue.add(chosen)

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
        senders = [q.sender for q in self.queues if q.sender is not None and not q.sender.done()]
        if senders:
            await asyncio.wait(senders, timeout=10)
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
            "waiting": sum(len(q.pending) for q in self.queues),
            "dropped": self.alerts_dropped,
        }
        if self.output_errors:
            doc["status"] = "degraded"
        return doc
