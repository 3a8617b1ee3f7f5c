"""Turning finished exchanges into events and alerts, off the request path and in batches.

The proxy hands each exchange over once the agent has its response (``schedule`` only
appends to a queue bounded in exchanges and in the body bytes they hold); parsing the
request waits until then too. One consumer task takes what has accumulated, builds the
events on the event loop (small exchanges: no thread hand-off, whose GIL wait would land
on the next request's latency; the loop is let go every couple of milliseconds) or on one
worker thread (large ones), and submits the whole batch through ``aw.pipeline.submit`` at
once, so a burst of LLM calls costs one commit.

Each exchange is turned into events on its own: one that cannot be (a body no parser
expected) is counted and logged, and the other exchanges of its batch are recorded as usual.

Nothing is dropped silently: an exchange that does not fit the queue or cannot be turned
into events, a batch the pipeline refuses after retries, or an event the builder got wrong
is counted in ``agentwatch_events_dropped{reason="gateway_*"}`` and in :attr:`Recorder.dropped`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import structlog

from agentwatch.capture.gateway.attribution import Attribution
from agentwatch.capture.gateway.events import EventBuilder
from agentwatch.capture.gateway.exchange import Exchange
from agentwatch.capture.guard import Guard, Verdict
from agentwatch.events.model import Event, EventError
from agentwatch.events.normalize import normalize
from agentwatch.pipeline.pipeline import Finding, QueueFull, ShuttingDown

log = structlog.get_logger("agentwatch.capture.gateway")


@lru_cache(maxsize=1024)
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


SUBMIT_RETRIES = 5
RETRY_DELAY_S = 0.2
MAX_PENDING = 10_000  # exchanges waiting to be recorded
# request and captured response bytes those exchanges may hold (each up to
# capture.max_request_bytes + max_capture_bytes: 10 000 of them would be 400 GB); one
# exchange is always taken when none waits, however large
MAX_PENDING_BYTES = 256 * 1024 * 1024
BATCH_WAIT_S = 0.25  # gather a burst: one build pass and one commit per window, not per call
MAX_BATCH = 500
INLINE_BYTES = 128 * 1024  # larger exchanges (request + captured response) are built on the worker thread
SLICE_S = 0.002  # the longest the batch keeps the event loop before letting requests through


def _held(ex: Exchange) -> int:
    """Body bytes a waiting exchange holds (its request is parsed, and dropped, only once taken)."""
    return len(ex.request_body) + ex.captured_bytes + ex.tail_bytes


def _where(exc: BaseException) -> str:
    """``file:line`` where ``exc`` was raised: enough to find the bug, nothing of the bodies involved."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


class Recorder:
    def __init__(self, aw: Any, builder: EventBuilder, guard: Guard) -> None:
        self.aw = aw
        self.builder = builder
        self.guard = guard
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aw-gateway-events")
        self.queue: deque[tuple[Exchange, str, Verdict | None]] = deque()
        self.queued_bytes = 0  # _held() of the exchanges in the queue
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.recorded = 0
        self.dropped = 0
        self.stopping = False
        self.attribution = Attribution()

    @property
    def pending(self) -> int:
        return len(self.queue)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="agentwatch-gateway-recorder")

    def schedule(self, ex: Exchange, mode: str, verdict: Verdict | None = None) -> None:
        held = _held(ex)
        if len(self.queue) >= MAX_PENDING or (self.queue and self.queued_bytes + held > MAX_PENDING_BYTES):
            self.dropped += 1
            self.aw.metrics.dropped.labels("gateway_backlog").inc()
            log.warning("gateway.exchange_dropped", reason="backlog", route=ex.route)
            return
        self.queue.append((ex, mode, verdict))
        self.queued_bytes += held
        self.wakeup.set()

    async def _run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if not self.stopping:
                await asyncio.sleep(BATCH_WAIT_S)
            while self.queue:
                batch = [self.queue.popleft() for _ in range(min(MAX_BATCH, len(self.queue)))]
                self.queued_bytes -= sum(_held(ex) for ex, _, _ in batch)
                try:
                    await self._record(batch)
                except Exception as exc:  # not one exchange's doing (each is built apart): the batch is lost
                    log.error(
                        "gateway.record_failed", exchanges=len(batch), error=type(exc).__name__, where=_where(exc)
                    )
                    self.dropped += len(batch)
                    self.aw.metrics.dropped.labels("gateway_build_error").inc(len(batch))
            if self.stopping:
                return

    async def _record(self, batch: list[tuple[Exchange, str, Verdict | None]]) -> None:
        loop = asyncio.get_running_loop()
        events: list[Event] = []
        findings: list[Finding] = []
        try:
            await self._attribute(loop, [ex for ex, _, _ in batch])
        except Exception as exc:  # attribution is best effort: the exchanges are recorded without it
            log.warning("gateway.attribution_failed", error=type(exc).__name__, where=_where(exc))
        since = time.perf_counter()
        for ex, mode, verdict in batch:
            if _held(ex) > INLINE_BYTES:
                ev, fs = await loop.run_in_executor(self.executor, self._build_one, ex, mode, verdict)
                since = time.perf_counter()
            else:
                ev, fs = self._build_one(ex, mode, verdict)
                if time.perf_counter() - since > SLICE_S:  # let waiting requests through, then go on
                    await asyncio.sleep(0)
                    since = time.perf_counter()
            events += ev
            findings += fs
        if not events:
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
                log.exception("gateway.alert_failed", findings=len(findings))

    async def _attribute(self, loop: asyncio.AbstractEventLoop, exchanges: list[Exchange]) -> None:
        """Find the local process behind each loopback client (cached per connection; /proc reads off the loop)."""
        todo: list[Exchange] = []
        for ex in exchanges:
            if not self.attribution.enabled or ex.client is None or ex.server_port is None:
                continue
            if not _is_loopback(ex.client[0]):
                continue
            found, info = self.attribution.cached(ex.client[1], ex.server_port)
            if found:
                ex.process = info
            else:
                todo.append(ex)
        if todo:

            def resolve_all() -> None:
                for ex in todo:
                    ex.process = self.attribution.resolve(ex.client[1], ex.server_port)  # type: ignore[index,arg-type]

            await loop.run_in_executor(self.executor, resolve_all)

    def _build_one(self, ex: Exchange, mode: str, verdict: Verdict | None) -> tuple[list[Event], list[Finding]]:
        """The events of one exchange; a failure is counted and logged, and costs this exchange only."""
        try:
            return self._build(ex, mode, verdict)
        except Exception as exc:  # a body no parser expected: never the other exchanges' loss
            self.dropped += 1
            self.aw.metrics.dropped.labels("gateway_build_error").inc()
            # the exception's type and place only: its message may quote the bodies
            log.error("gateway.exchange_unrecorded", route=ex.route, error=type(exc).__name__, where=_where(exc))
            return [], []

    def _build(self, ex: Exchange, mode: str, verdict: Verdict | None) -> tuple[list[Event], list[Finding]]:
        req = ex.parsed()
        if not req.is_llm_call and verdict is None:
            return [], []  # model listings, token counts...: relayed, not recorded as LLM calls
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
        try:
            if verdict is not None:  # decided inline (enforce mode): point its findings at the stored event
                for f in verdict.findings:
                    f.events = [request_event]
                findings = list(verdict.findings)
                if verdict.action == "block":
                    findings.append(self.guard.block_finding(request_event, verdict, ex.route))
            elif mode == "monitor" and req.is_llm_call:
                findings = self.guard.decide("monitor", request_event, report, req.model).findings
        except Exception as exc:  # the events are recorded all the same
            log.error("gateway.guard_failed", route=ex.route, error=type(exc).__name__, where=_where(exc))
            findings = []
        return events, findings

    def _drop(self, events: list[Event], reason: str) -> None:
        self.dropped += len(events)
        self.aw.metrics.dropped.labels(reason).inc(len(events))
        log.warning("gateway.events_dropped", reason=reason, count=len(events))

    async def drain(self, timeout: float = 30.0) -> None:
        """Record everything queued, then stop the consumer (called before the pipeline stops)."""
        self.stopping = True
        self.wakeup.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, timeout)
            except TimeoutError:
                log.error("gateway.drain_timeout", pending=len(self.queue))
                self.task.cancel()
        # A job may still run on the thread (the task above was cancelled, or gave up waiting for
        # it): the server disposes of the store next, and a connection the job holds then would
        # stay open until the garbage collector found it. Waited for off the loop, and bounded.
        try:
            await asyncio.wait_for(asyncio.to_thread(self.executor.shutdown, True), timeout)
        except TimeoutError:
            log.error("gateway.thread_still_running", waited_s=timeout)
