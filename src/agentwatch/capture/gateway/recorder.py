"""Turning finished exchanges into events and alerts, off the request path.

The proxy hands each exchange over once the agent has its response. Event building runs on
one worker thread (it holds the tool-call book, so it is serial), then the events go through
``aw.pipeline.submit``. An exchange is never dropped silently: when the pipeline refuses,
the submit is retried a few times and then the events are counted in
``agentwatch_events_dropped{reason="gateway_*"}``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from agentwatch.capture.gateway.events import EventBuilder
from agentwatch.capture.gateway.exchange import Exchange
from agentwatch.capture.guard import Guard, Verdict
from agentwatch.events.model import Event, EventError
from agentwatch.events.normalize import normalize
from agentwatch.pipeline.pipeline import Finding, QueueFull, ShuttingDown

log = structlog.get_logger("agentwatch.capture.gateway")

SUBMIT_RETRIES = 5
RETRY_DELAY_S = 0.2


class Recorder:
    def __init__(self, aw: Any, builder: EventBuilder, guard: Guard) -> None:
        self.aw = aw
        self.builder = builder
        self.guard = guard
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aw-gateway-events")
        self.tasks: set[asyncio.Task[None]] = set()
        self.recorded = 0
        self.dropped = 0

    def schedule(self, ex: Exchange, mode: str, verdict: Verdict | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self.record(ex, mode, verdict))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _build(self, ex: Exchange, mode: str, verdict: Verdict | None) -> tuple[list[Event], list[Finding]]:
        bodies, report, _parsed = self.builder.build(ex)
        events: list[Event] = []
        for b in bodies:
            try:
                e = normalize(b, type_validator=self.aw.type_validator, source_format="gateway")
            except EventError as exc:  # a builder bug: count it, keep the exchange's other events
                log.error("gateway.invalid_event", event_type=b.get("event_type"), field=exc.field, rule=exc.rule)
                self.dropped += 1
                self.aw.metrics.dropped.labels("gateway_invalid_event").inc()
                continue
            e.agent = ex.agent
            e.session_id = ex.session_id
            events.append(e)
        request_event = next((e for e in events if e.event_type == "ai.request"), None)
        if request_event is None:
            return events, []
        findings: list[Finding] = []
        if verdict is not None:  # decided inline (enforce mode): point its findings at the stored event
            for f in verdict.findings:
                f.events = [request_event]
            findings = list(verdict.findings)
            if verdict.action == "block":
                findings.append(self.guard.block_finding(request_event, verdict, ex.route))
        elif mode == "monitor" and ex.request.is_llm_call:
            findings = self.guard.decide("monitor", request_event, report, ex.request.model).findings
        return events, findings

    async def record(self, ex: Exchange, mode: str, verdict: Verdict | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            events, findings = await loop.run_in_executor(self.executor, self._build, ex, mode, verdict)
        except Exception:
            log.exception("gateway.record_failed", route=ex.route)
            self.dropped += 1
            self.aw.metrics.dropped.labels("gateway_build_error").inc()
            return
        for attempt in range(SUBMIT_RETRIES):
            try:
                await self.aw.pipeline.submit(events)
                self.recorded += len(events)
                break
            except QueueFull:
                if attempt == SUBMIT_RETRIES - 1:
                    self._drop(events, "gateway_queue_full")
                    return
                await asyncio.sleep(RETRY_DELAY_S * (attempt + 1))
            except ShuttingDown:
                self._drop(events, "gateway_shutdown")
                return
        if findings:
            try:
                await self.aw.alerts.record(findings)
            except Exception:
                log.exception("gateway.alert_failed", route=ex.route)

    def _drop(self, events: list[Event], reason: str) -> None:
        self.dropped += len(events)
        self.aw.metrics.dropped.labels(reason).inc(len(events))
        log.warning("gateway.events_dropped", reason=reason, count=len(events))

    async def drain(self, timeout: float = 30.0) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        self.executor.shutdown(wait=False)
