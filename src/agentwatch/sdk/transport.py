"""The SDK's delivery core: a bounded queue drained by one background thread.

The agent's thread encodes its event (so the report is what the agent said at that
moment, whatever it does to its objects afterwards) and appends the bytes to a queue
bounded in events and in bytes; it never does network I/O, so reporting can neither
raise into the agent nor stall it. The sender thread posts batches (``posting``: a JSON
array on ``POST /events``, retried with backoff), and when the collector stays
unreachable it hands the events to the spill file (``spill_handoff``), which is replayed
before new events once the collector answers again. Because the server treats
``(session_id, sequence)`` as idempotent, a batch resent after an uncertain failure is
never stored twice.

When the queue is full, what it holds and the new event go to the spill file (in that
order, so the collector still sees a session's events in order) rather than being
dropped; only when the spill file cannot be written, or is full (``spill_max_bytes``),
is an event lost, and that is counted in ``stats["dropped"]`` (a full file also in
``stats["spill_full"]``, a failed write in ``stats["spill_failed"]``). By default each
collector URL has a spill file of its own. As the process ends every open transport is
closed within its deadline (``closing``). In the child of ``os.fork()`` a transport starts
afresh: what the parent queued is the parent's to deliver, and a new sender, with
connections of its own (``connections``), starts on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import httpx

from agentwatch.sdk import closing, forking, spill
from agentwatch.sdk.closing import close_all
from agentwatch.sdk.connections import Connections, TransportFactory
from agentwatch.sdk.encoding import encode_event
from agentwatch.sdk.options import (
    check_api_key,
    collector_url,
    count_option,
    default_spill_path,
    seconds_option,
    shared_spill_path,
    size_option,
    transport_factory_option,
)
from agentwatch.sdk.posting import KEPT_STATUS, MAX_DOUBLINGS, RETRY_STATUS, Collector, reason
from agentwatch.sdk.spill import BATCH_BYTES
from agentwatch.sdk.spill_handoff import SpillHandoff

__all__ = [
    "KEPT_STATUS",
    "MAX_DOUBLINGS",
    "RETRY_STATUS",
    "SPILL_MAX_BYTES",
    "STATS",
    "Transport",
    "close_all",
    "reason",
]

log = logging.getLogger("agentwatch.sdk")

SPILL_MAX_BYTES = 64 * 1024 * 1024
STATS = ("sent", "spilled", "replayed", "rejected", "dropped", "spill_full", "spill_failed", "spill_malformed")


class Transport:
    """Shared by a client and every child client it spawns."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:7777",
        *,
        api_key: str | None = None,
        timeout: float = 2.0,
        batch_size: int = 100,
        flush_interval: float = 0.2,
        queue_size: int = 10_000,
        queue_bytes: int = 16 * 1024 * 1024,
        max_retries: int = 3,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        spill_path: str | Path | None = None,
        spill_max_bytes: int = SPILL_MAX_BYTES,
        transport: httpx.BaseTransport | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.url, auth = collector_url(url)
        check_api_key(api_key)
        headers = {"Content-Type": "application/json", "User-Agent": "agentwatch-sdk"}
        if api_key:
            headers["X-API-Key"] = api_key
        self.timeout = seconds_option("timeout", timeout)
        self.flush_interval = seconds_option("flush_interval", flush_interval)
        self.backoff_base = seconds_option("backoff_base", backoff_base, zero=True)
        self.backoff_max = seconds_option("backoff_max", backoff_max, zero=True)
        self.batch_size = count_option("batch_size", batch_size)
        self.queue_size = count_option("queue_size", queue_size)
        self.queue_bytes = count_option("queue_bytes", queue_bytes)
        self.max_retries = count_option("max_retries", max_retries)
        self.spill_max_bytes = size_option("spill_max_bytes", spill_max_bytes)
        if spill_path is not None:
            self.spill_path = Path(spill_path)
        else:
            self.spill_path = default_spill_path(self.url)
            spill.point_out_shared_file(shared_spill_path())
        factory = transport_factory_option(transport_factory, transport)
        self._connections = Connections({"headers": headers, "auth": auth, "timeout": self.timeout}, transport, factory)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._closed = False
        self._fresh_state()
        self._handoff.look_for_orphans()
        if not self._handoff.waiting():
            self._idle.set()
        self._start_sender()
        closing.track(self)
        forking.renew_in_child(self)

    def _fresh_state(self) -> None:
        """What one process's sender works with: made here, and made again in a forked child."""
        self.stats = dict.fromkeys(STATS, 0)
        self._stats_lock = threading.Lock()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._inflight: list[bytes] | None = None  # the batch the sender is posting
        self._lock = threading.RLock()  # a logging handler that reports to agentwatch may re-enter put()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = threading.Event()  # cuts a backoff wait short when closing
        self._collector = Collector(
            self.url,
            max_retries=self.max_retries,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            new_client=self._connections.new_client,
            count=self.count,
            stopping=self._stopping,
        )
        self._handoff = SpillHandoff(
            self.spill_path, max_bytes=self.spill_max_bytes, batch_size=self.batch_size, count=self.count
        )

    def after_fork_in_child(self) -> None:
        """In the child of ``os.fork()``. The queue, the batch in flight and the claimed spill
        file are the parent's, which delivers them: taking them too would send them twice. A
        lock a thread of the parent held would stay held, and the pooled connections are the
        parent's sockets (left open: closing them here could end the parent's requests). So the
        child starts afresh, with counters of its own, and a sender and an HTTP client start
        when it first reports or flushes. A transport closed in the parent stays closed."""
        self._fresh_state()
        self._idle.set()
        self._stop = self._closed
        self._thread = None

    @property
    def _http(self) -> httpx.Client | None:
        """This process's HTTP client (None until its sender starts)."""
        return self._collector.http

    def _start_sender(self) -> None:
        """Start the sender thread unless it runs or the transport is closed."""
        if self._thread is not None or self._closed:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._collector.connect()
            thread = threading.Thread(target=self._run, name="agentwatch-sdk", daemon=True)
            thread.start()
            self._thread = thread

    def count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    # -- the agent's side (never blocks on the network, never raises) ----------
    def put(self, event: dict[str, Any]) -> None:
        try:
            line = encode_event(event)
            if line is None:
                self.count("dropped")
                return
            self.put_line(line)
        except Exception:  # reporting must never break the agent
            log.exception("agentwatch sdk: could not queue an event")

    def put_line(self, line: bytes) -> None:
        """Queue one encoded event; a full queue goes to the spill file with it, oldest first."""
        self._start_sender()  # in a forked child, on its first report
        with self._lock:
            if self._stop:  # closed: no sender thread drains the queue any more
                overflow = [line]
            elif len(self._queue) < self.queue_size and (
                not self._queue or self._queued_bytes + len(line) <= self.queue_bytes
            ):
                self._queue.append(line)
                self._queued_bytes += len(line)
                self._idle.clear()
                if len(self._queue) >= self.batch_size:
                    self._wake.set()
                return
            else:
                overflow = [*self._queue, line]
                self._queue.clear()
                self._queued_bytes = 0
                self._idle.clear()
                self._wake.set()
            # still under the lock: no later event can be queued, and sent, before these are spilled
            self._handoff.append(overflow)

    def wake_up(self) -> None:
        """Deliver now: the spill file first, even while backing off from a failure."""
        self._collector.try_now()
        self._idle.clear()
        self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Try to deliver now (the spill file first); wait until everything is delivered, or
        spilled after a failed attempt. False when ``timeout`` ran out first. After ``close``
        everything is already in the spill file: it returns at once."""
        if self._closed:
            return True
        self._start_sender()
        self.wake_up()
        return self._idle.wait(self.timeout * 2 if timeout is None else max(0.0, timeout))

    def close(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within ``timeout``; spill the rest (the batch being
        posted too); stop the thread. A second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread  # None in a forked child that never reported: nothing to wait for
        limit = self.timeout * 2 if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + limit
        if thread is not None:
            self.wake_up()
            self._idle.wait(limit)
        with self._lock:
            self._stop = True
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))  # the whole close within ``timeout``
        with self._lock:  # held while spilling: an event reported now is spilled after these
            rest = [*(self._inflight or []), *self._queue]  # the batch in flight is older than the queue
            self._inflight = None
            self._queue.clear()
            self._queued_bytes = 0
            self._handoff.append(rest)
        closing.untrack(self)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- the sender thread -------------------------------------------------------
    def _take(self) -> list[bytes]:
        """The next batch: up to batch_size events and BATCH_BYTES (at least one event). None
        while spilled events wait for a reachable collector: they are older, and go first."""
        with self._lock:  # a full queue is spilled under this lock: the check and the take agree
            if self._collector.ready() and self._handoff.waiting():
                return []
            batch: list[bytes] = []
            body = 1  # the body's bytes: "[", then each event and its "," or "]"
            while self._queue and len(batch) < self.batch_size:
                if batch and body + len(self._queue[0]) + 1 > BATCH_BYTES:
                    break
                batch.append(self._queue.popleft())
                body += len(batch[-1]) + 1
                self._queued_bytes -= len(batch[-1])
            self._inflight = batch or None
            return batch

    def _settle(self, batch: list[bytes], delivered: bool) -> None:
        """The batch is done with; spilled unless delivered, or unless ``close`` took it over."""
        with self._lock:
            mine = self._inflight is batch
            self._inflight = None
        if mine and not delivered:
            self._handoff.append(batch)

    def _run(self) -> None:
        busy = False  # the last step took a batch: more may be queued right behind it
        while True:
            if not self._queue and self._stop:
                self._handoff.give_back()
                self._collector.disconnect()  # here, not in close(): close may have stopped waiting for this thread
                return
            if not busy:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            try:
                busy = self._step()
            except Exception:
                log.exception("agentwatch sdk: sender step failed")
                busy = False

    def _step(self) -> bool:
        """Replay what was spilled, then post one batch; True when a batch was taken."""
        # all that was spilled is older than what is queued: it goes first, to the last line
        while self._collector.ready() and self._handoff.waiting() and self._handoff.replay(self._collector.post):
            pass
        batch = self._take()
        if not batch:
            self._maybe_idle()
            return False
        delivered = False
        try:
            delivered = self._collector.ready() and self._collector.post(batch, "sent")
        finally:
            self._settle(batch, delivered)
        self._maybe_idle()
        return True

    def _maybe_idle(self) -> None:
        """Idle: nothing queued, and no spill file waiting unless the last attempt failed."""
        spill_waiting = not self._collector.failing and self._handoff.waiting()
        with self._lock:
            if not self._queue and not spill_waiting:
                self._idle.set()
