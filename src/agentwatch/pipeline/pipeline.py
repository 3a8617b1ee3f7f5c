"""Micro-batching pipeline: accepted events -> stages -> commit -> detectors -> publish.

``submit`` returns only after the events are committed (persist before
acknowledge), so an event acknowledged to a client is never lost; concurrent
submissions are committed together (group commit). The queue is bounded by a
count of events; past it the overflow policy rejects (503) or blocks for a
while and then rejects. Every event refused that way is counted as dropped.
On shutdown, everything accepted is committed before the worker exits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from agentwatch.config import PipelineSettings
from agentwatch.events.model import Event
from agentwatch.pipeline.gathering import let_arrive
from agentwatch.pipeline.hub import LiveHub
from agentwatch.pipeline.metrics import Metrics
from agentwatch.pipeline.stages import Stage, run_stages
from agentwatch.pipeline.work_thread import WorkThread
from agentwatch.store import events as event_store
from agentwatch.store.engine import is_locked, is_sqlite

log = structlog.get_logger("agentwatch.pipeline")


# How long an inline commit (see ``Pipeline._run_process``) waits for another writer's SQLite lock
# before it hands the batch to a thread, where the store's usual wait applies.
INLINE_LOCK_WAIT_MS = 25


class QueueFull(RuntimeError):
    """The pipeline cannot take more events now; the client should retry later."""

    retry_after_s = 1


class ShuttingDown(RuntimeError):
    """The pipeline no longer accepts events."""


class NotSettled(RuntimeError):
    """Scale-out: the workers did not commit the events accepted before a request in time."""

    retry_after_s = 5


@dataclass
class Finding:
    """What a detector reports; :mod:`agentwatch.alerts` turns findings into alerts.

    ``severity`` is 0-10 (see ``agentwatch.alerts.model.severity_label``).
    ``alert_type`` is one of sigma, atr, builtin, correlation, ml, ueba, ioc,
    discovery, guard. Findings with the same ``dedup_key`` (default: the
    entities of the events) for the same rule merge into one alert within the
    dedup window.
    """

    detector: str
    rule_id: str
    title: str
    severity: int
    events: list[Event]
    alert_type: str = "builtin"
    message: str = ""
    tags: list[str] = field(default_factory=list)
    dedup_key: str | None = None
    session_id: str | None = None
    ts: float | None = None  # event time of the finding; default: the latest event's
    details: dict[str, Any] = field(default_factory=dict)
    # Set when a detector evaluating inside the commit stored the finding in the events' own
    # transaction (``alerts.recorder.record_in``): the alert as stored and whether it was new.
    # A finding sink then publishes it without storing it again.
    stored_as: tuple[dict[str, Any], bool] | None = None


class Detector(Protocol):
    name: str

    def detect(self, batch: Sequence[Event]) -> list[Finding]: ...


FindingSink = Callable[[list[Finding]], Awaitable[None]]
CommitHook = Callable[[list[Event]], Awaitable[None]]


@dataclass
class Outcome:
    stored: int = 0
    duplicates: int = 0
    filtered: int = 0


@dataclass
class _Submission:
    events: list[Event]
    future: asyncio.Future[Outcome]
    ticket: Any = None  # the request's AuditTicket, its row committed with the events
    audit_entry: Any = None


class Pipeline:
    def __init__(
        self,
        engine: Any,
        settings: PipelineSettings,
        hub: LiveHub,
        metrics: Metrics,
        stages: Sequence[Stage] = (),
        detectors: Sequence[Detector] = (),
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.hub = hub
        self.metrics = metrics
        self.stages = list(stages)
        self.detectors = list(detectors)
        # A stage may also write derived rows in the commit's transaction: ``in_commit(conn, fresh)``;
        # so may a detector whose state must be committed with the events it was derived from.
        self.commit_steps = [
            part.in_commit for part in [*self.stages, *self.detectors] if callable(getattr(part, "in_commit", None))
        ]
        self.finding_sinks: list[FindingSink] = []
        self.commit_hooks: list[CommitHook] = []
        # Stores audit rows inside the commit's transaction (``AuditLog.append_in``); set by the
        # audit log's owner. Without it, requests are audited apart from their events.
        self.audit_writer: Callable[[Any, list[Any]], object] | None = None
        # Set on an API node of a scale-out deployment: events go to the bus, a worker commits them.
        self.forwarder: Callable[[list[Event]], Awaitable[Outcome]] | None = None
        # Set on every node of a scale-out deployment: waits (at most the given seconds) until
        # the workers have committed every event accepted before the call (see ``settled``).
        self.settle: Callable[[float], Awaitable[None]] | None = None
        # Held from a batch's commit until its findings are recorded; what must happen between
        # two commits, never inside one (deleting a session and all that was derived from it), takes it.
        self.commit_lock = asyncio.Lock()
        self._sqlite = is_sqlite(engine)
        # Decoding request bodies (the ingest routes) and processing the batches share it.
        self.work = WorkThread()
        self._queue: asyncio.Queue[_Submission | None] = asyncio.Queue()
        self._pending = 0
        self._space = asyncio.Condition()
        self._worker: asyncio.Task[None] | None = None
        self._accepting = False
        self.started_at = time.time()
        self.committed_total = 0
        self._rate_window: deque[tuple[float, int]] = deque()
        self.rate_source: Callable[[], float | None] | None = None  # see events_per_second

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        # A stage that remembers across batches (the live traces) reads its memory back from
        # the store first, so a restart, clean or not, does not start it afresh.
        for stage in self.stages:
            restore = getattr(stage, "restore", None)
            if callable(restore):
                try:
                    await asyncio.to_thread(restore, self.engine)
                except Exception:  # a stage that starts afresh still works
                    log.exception("pipeline.restore_failed", stage=stage.name)
        self._accepting = True
        self._worker = asyncio.create_task(self._run(), name="agentwatch-pipeline")

    async def stop(self) -> None:
        """Stop accepting, commit everything accepted, then end the worker."""
        self._accepting = False
        if self._worker is None:
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), self.settings.shutdown_drain_s)
        except TimeoutError:
            log.error("pipeline.drain_timeout", pending=self._pending)
            self._worker.cancel()
        self._worker = None
        self.work.close()

    async def settled(self) -> None:
        """Return once every event accepted before the call is committed; raises NotSettled.

        One node accepts an event only once it is committed, so there it returns at once. In a
        scale-out deployment an API node accepts events once the bus holds them, and some
        worker commits them later: what must see them all (deleting a session, which would
        otherwise come back with the events still on their way) waits for the workers first.
        """
        if self.settle is not None:
            await self.settle(self.settings.settle_timeout_s)

    @property
    def pending(self) -> int:
        return self._pending

    # -- intake ----------------------------------------------------------
    async def submit(self, events: list[Event], audit: Any = None) -> Outcome:
        """Commit ``events``; returns after they are stored. Raises QueueFull / ShuttingDown.

        ``audit`` (an :class:`~agentwatch.soc.audit.AuditTicket`) has the request's audit row
        stored in the same transaction, for the status the route answers on success (200).
        """
        if not events:
            return Outcome()
        if not self._accepting:
            raise ShuttingDown("the server is shutting down")
        if self.forwarder is not None:
            return await self.forwarder(events)
        n = len(events)
        limit = self.settings.queue_size
        if self._pending + n > limit and self._pending > 0:
            if self.settings.overflow == "block":
                try:
                    async with self._space:
                        await asyncio.wait_for(
                            self._space.wait_for(lambda: self._pending + n <= limit or self._pending == 0),
                            self.settings.block_timeout_s,
                        )
                except TimeoutError:
                    self.metrics.dropped.labels("queue_full").inc(n)
                    raise QueueFull("pipeline queue is full") from None
            else:
                self.metrics.dropped.labels("queue_full").inc(n)
                raise QueueFull("pipeline queue is full")
        entry = await audit.entry(200) if audit is not None and self.audit_writer is not None else None
        self._pending += n  # the queue-depth gauge reads this when /metrics is scraped
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        # unbounded: the event count above is the bound
        self._queue.put_nowait(_Submission(events, fut, audit if entry is not None else None, entry))
        # Not shielded: a client that goes away cancels only its wait; the worker skips a
        # cancelled future, and the events are committed all the same.
        return await fut

    # -- worker ----------------------------------------------------------
    async def _gather(self, first: _Submission) -> tuple[list[_Submission], bool]:
        subs = [first]
        size = len(first.events)
        deadline = time.monotonic() + self.settings.batch_ms / 1000
        stop = False
        while size < self.settings.batch_size:
            timeout = deadline - time.monotonic()
            try:
                nxt = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            if nxt is None:
                stop = True
                break
            subs.append(nxt)
            size += len(nxt.events)
        return subs, stop

    async def _run(self) -> None:
        stop = False
        while not stop or not self._queue.empty():
            item = await self._queue.get()
            if item is None:
                stop = True
                continue
            if self.settings.batch_ms == 0:
                await let_arrive(self._queue.qsize)
            subs, got_stop = await self._gather(item)
            stop = stop or got_stop
            async with self.commit_lock:
                await self._commit(subs)

    def _process(
        self, batch: list[Event], audit_entries: list[Any], lock_wait_ms: int | None = None
    ) -> tuple[list[Event], list[Event], list[Finding]]:
        """Stages, commit (with the stages' commit steps and the requests' audit rows), then
        detectors on the events stored for the first time (a resent event is never detected
        twice). Returns (kept, stored, findings). ``lock_wait_ms``: see ``commit_batch``."""
        kept = run_stages(self.stages, batch)
        writer = self.audit_writer
        also = (lambda conn: writer(conn, audit_entries)) if audit_entries and writer is not None else None
        if kept or also is not None:
            stored = event_store.commit_batch(self.engine, kept, self.commit_steps, also, lock_wait_ms)
        else:
            stored = []
        findings: list[Finding] = []
        if stored:
            for det in self.detectors:
                try:
                    found = det.detect(stored)
                except Exception:  # the events are committed: a detector's fault must not fail their intake
                    log.exception("pipeline.detector_failed", detector=det.name, events=len(stored))
                    self.metrics.detector_errors.labels(det.name).inc()
                    continue
                if found:
                    self.metrics.findings.labels(det.name).inc(len(found))
                    findings.extend(found)
        return kept, stored, findings

    async def _commit(self, subs: list[_Submission]) -> None:
        batch = [e for s in subs for e in s.events]
        entries = [s.audit_entry for s in subs if s.audit_entry is not None]
        started = time.perf_counter()
        try:
            kept, stored, findings = await self._run_process(batch, entries)
        except Exception as exc:  # a storage failure: tell every waiting client
            if len(subs) > 1:
                # One submission's events may be what the store refused: commit each apart, so
                # the others' events are not lost with it.
                log.warning("pipeline.group_commit_failed", submissions=len(subs), error=type(exc).__name__)
                for s in subs:
                    await self._commit([s])
                return
            log.exception("pipeline.commit_failed", events=len(batch))
            self.metrics.dropped.labels("commit_failed").inc(len(batch))
            self._release(len(batch))
            for s in subs:
                if not s.future.done():
                    s.future.set_exception(exc)
            return
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.committed.inc(len(stored))
        self.metrics.duplicates.inc(len(kept) - len(stored))
        self.metrics.filtered.inc(len(batch) - len(kept))
        self.committed_total += len(stored)
        self._note_rate(len(stored))
        every = len(stored) == len(batch)  # the usual case: no event was a repeat or filtered out
        stored_ids = set() if every else {id(e) for e in stored}
        kept_ids = set() if every else {id(e) for e in kept}
        for s in subs:
            if s.ticket is not None:
                s.ticket.stored_status = 200
            out = Outcome()
            if every:
                out.stored = len(s.events)
            else:
                for e in s.events:
                    if id(e) in stored_ids:
                        out.stored += 1
                    elif id(e) in kept_ids:
                        out.duplicates += 1
                    else:
                        out.filtered += 1
            if not s.future.done():
                s.future.set_result(out)
        self._release(len(batch))
        self.hub.publish_all("event", stored)
        for hook in self.commit_hooks:
            try:
                await hook(stored)
            except Exception:
                log.exception("pipeline.commit_hook_failed")
        if findings:
            for sink in self.finding_sinks:
                try:
                    await sink(findings)
                except Exception:
                    log.exception("pipeline.finding_sink_failed")

    async def _run_process(
        self, batch: list[Event], entries: list[Any]
    ) -> tuple[list[Event], list[Event], list[Finding]]:
        """Run ``_process`` on the work thread; a small SQLite batch on this thread instead.

        Small batches are what many concurrent clients posting one event each produce. On a
        thread, such a commit and the event loop decoding the next requests take the
        interpreter lock from each other many times per commit, and each handover waits out a
        time slice: measured with 50 clients posting single AOP events, commits then held 4 and
        46 events in turn, each taking as long as both together should. Inline, SQLite's work
        for a few dozen events is shorter than those waits, the loop meanwhile gathers the next
        requests, and the batch after holds them all. A writer holding SQLite's lock longer
        than ``INLINE_LOCK_WAIT_MS`` would stall the loop: the batch then goes to a thread.
        """
        if self._sqlite and len(batch) <= self.settings.inline_commit_events:
            try:
                return self._process(batch, entries, lock_wait_ms=INLINE_LOCK_WAIT_MS)
            except Exception as exc:
                if not is_locked(exc):
                    raise
                self.metrics.inline_lock_waits.inc()
        return await self.work.run(self._process, batch, entries)

    def _release(self, n: int) -> None:
        self._pending -= n

        async def _notify() -> None:
            async with self._space:
                self._space.notify_all()

        if self.settings.overflow == "block":
            asyncio.get_running_loop().create_task(_notify())

    def _note_rate(self, n: int) -> None:
        now = time.time()
        self._rate_window.append((now, n))
        cutoff = now - 10
        while self._rate_window and self._rate_window[0][0] < cutoff:
            self._rate_window.popleft()

    def events_per_second(self) -> float:
        """Events committed per second over the last 10 s: the whole server's when its processes
        report theirs to each other (``rate_source``), else this process's."""
        if self.rate_source is not None:
            total = self.rate_source()
            if total is not None:
                return round(total, 3)
        return self.local_events_per_second()

    def local_events_per_second(self) -> float:
        now = time.time()
        recent = [n for t, n in self._rate_window if t >= now - 10]
        return round(sum(recent) / 10.0, 3)
