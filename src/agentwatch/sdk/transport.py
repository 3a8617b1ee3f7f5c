"""The SDK's delivery core: a bounded queue drained by one background thread.

The agent's thread encodes its event (so the report is what the agent said at that
moment, whatever it does to its objects afterwards) and appends the bytes to a queue
bounded in events and in bytes; it never does network I/O, so reporting can neither
raise into the agent nor stall it. The sender thread posts batches (a JSON array on
``POST /events``), retries with exponential backoff (or the collector's
``Retry-After``), and when the collector stays unreachable it appends the events to
a spill file (NDJSON). Once the collector answers again the spill file is replayed
before new events. Because the server treats ``(session_id, sequence)`` as
idempotent, a batch resent after an uncertain failure is never stored twice. A spill
file being replayed is first claimed (renamed ``<spill>.<pid>-<id>.replay``); what is
not delivered stays claimed and goes first next time, and a claim whose process ended
is taken over by the next transport that replays.

When the queue is full, what it holds and the new event go to the spill file (in that
order, so the collector still sees a session's events in order) rather than being
dropped; only when the spill file cannot be written, or is full (``spill_max_bytes``),
is an event lost, and that is counted in ``stats["dropped"]`` (a full file also in
``stats["spill_full"]``, a failed write in ``stats["spill_failed"]``). By default each
collector URL has a spill file of its own. At interpreter exit, and at the end of a
``multiprocessing`` child (which skips the interpreter's exit), every open transport is
closed, within its deadline, so nothing accepted is left only in memory. In the child of
``os.fork()`` a transport starts afresh: what the parent queued is the parent's to deliver,
and a new sender, with connections of its own, starts on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from agentwatch.net.retry_after import retry_after_s
from agentwatch.sdk import forking, spill
from agentwatch.sdk.encoding import encode_event, safe_text
from agentwatch.sdk.options import (
    check_api_key,
    collector_url,
    count_option,
    default_spill_path,
    seconds_option,
    shared_spill_path,
    size_option,
)
from agentwatch.sdk.spill import BATCH_BYTES

log = logging.getLogger("agentwatch.sdk")

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Not a verdict on the batch: a credential problem, or no collector at this URL (a wrong path, a proxy's
# page, a redirect). The batch is kept (spilled) for when the collector is reachable, not counted as refused.
KEPT_STATUS = {401, 403, 404, 405}
MAX_DOUBLINGS = 32  # backoff_base * 2**n stops growing here (2**1024 is no float: the sender would crash)
SPILL_MAX_BYTES = 64 * 1024 * 1024
STATS = ("sent", "spilled", "replayed", "rejected", "dropped", "spill_full", "spill_failed", "spill_malformed")


# -- the collector's answers -------------------------------------------------------
def reason(resp: httpx.Response) -> str:
    """What the collector said about a batch it did not take, short enough for a log line."""
    try:
        doc = resp.json()
    except Exception:
        return safe_text(resp.text, 300, str)
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    if err is None and isinstance(doc, dict):
        err = doc.get("detail")
    return safe_text(err if err is not None else doc, 300, str)


# -- closing at exit -------------------------------------------------------------------
_OPEN: weakref.WeakSet[Transport] = weakref.WeakSet()


def close_all() -> None:
    """At interpreter exit: deliver or spill what every open transport still holds, all of them
    at once and within the longest of their close deadlines, so the exit never hangs."""
    transports = list(_OPEN)
    if not transports:
        return
    deadline = time.monotonic() + max(t.timeout * 2 for t in transports)
    for t in transports:
        t.wake_up()
    for t in transports:
        with contextlib.suppress(Exception):
            t.close(max(0.0, deadline - time.monotonic()))


atexit.register(close_all)
forking.at_worker_exit(close_all)  # a multiprocessing child ends with os._exit(): no atexit there


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
        self._http_options = {"headers": headers, "auth": auth, "timeout": self.timeout}
        # the user's httpx transport, and the process it belongs to: its connection pool is that
        # process's sockets, so a forked child never uses it (see _new_http)
        self._user_transport = transport
        self._user_transport_pid = os.getpid()
        self._http: httpx.Client | None = None  # made with the sender thread, which closes it
        self._thread: threading.Thread | None = None
        self._stop = False
        self._closed = False
        self._fresh_state()
        self._orphans_seen = bool(spill.orphans(self.spill_path))
        if not self._spill_waiting():
            self._idle.set()
        self._start_sender()
        _OPEN.add(self)
        forking.renew_in_child(self)

    def _fresh_state(self) -> None:
        """What one process's sender works with: made here, and made again in a forked child."""
        self.stats = dict.fromkeys(STATS, 0)
        self._stats_lock = threading.Lock()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._inflight: list[bytes] | None = None  # the batch the sender is posting
        self._backlog: tuple[Path, int] | None = None  # a claimed spill file not yet replayed, and where
        self._lock = threading.RLock()  # a logging handler that reports to agentwatch may re-enter put()
        self._spill_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stopping = threading.Event()  # cuts a backoff wait short when closing
        self._down_until = 0.0
        self._failures = 0
        self._reported: int | None = None  # the last status warned about (one warning per change)
        self._full_reported = False  # the spill file's being full was warned about
        self._malformed_mark: tuple[Path, int] | None = None  # a claim's malformed lines counted up to here

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
        self._orphans_seen = False
        self._http = None
        self._thread = None

    def _start_sender(self) -> None:
        """Start the sender thread unless it runs or the transport is closed."""
        if self._thread is not None or self._closed:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            if self._http is None:
                self._http = self._new_http()
            thread = threading.Thread(target=self._run, name="agentwatch-sdk", daemon=True)
            thread.start()
            self._thread = thread

    def _new_http(self) -> httpx.Client:
        """This process's HTTP client. Without a transport from the user, httpx makes a new one, with
        an empty connection pool. The user's transport cannot be copied (httpx keeps no record of
        how it was made) and, in a forked child, its pool holds the parent's sockets: two processes
        writing requests and reading answers on one connection would mix them up. So the child
        leaves it alone (it neither uses nor closes it) and posts through a default transport
        instead, with the SDK's own settings (URL, credentials, timeout), and says so once."""
        transport = self._user_transport
        if transport is not None and os.getpid() != self._user_transport_pid:
            log.warning(
                "agentwatch sdk: in this forked process (pid %d) the httpx transport given to the SDK is not "
                "used (its connections belong to the process that made it, pid %d); events are posted through "
                "a default transport. To post through a transport of your own here, make a new Transport in "
                "this process",
                os.getpid(),
                self._user_transport_pid,
            )
            transport = None
        return httpx.Client(**self._http_options, transport=transport)

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
            self._spill_lines(overflow)

    def wake_up(self) -> None:
        """Deliver now: the spill file first, even while backing off from a failure."""
        self._down_until = 0.0
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
            self._spill_lines(rest)
        _OPEN.discard(self)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- the sender thread -------------------------------------------------------
    def _take(self) -> list[bytes]:
        """The next batch: up to batch_size events and BATCH_BYTES (at least one event). None
        while spilled events wait for a reachable collector: they are older, and go first."""
        with self._lock:  # a full queue is spilled under this lock: the check and the take agree
            if time.monotonic() >= self._down_until and self._spill_waiting():
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
            self._spill_lines(batch)

    def _run(self) -> None:
        busy = False  # the last step took a batch: more may be queued right behind it
        while True:
            if not self._queue and self._stop:
                self._give_back_backlog()
                if self._http is not None:
                    self._http.close()  # here, not in close(): close may have stopped waiting for this thread
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
        while time.monotonic() >= self._down_until and self._spill_waiting() and self._replay():
            pass
        batch = self._take()
        if not batch:
            self._maybe_idle()
            return False
        delivered = False
        try:
            delivered = time.monotonic() >= self._down_until and self._post(batch, "sent")
        finally:
            self._settle(batch, delivered)
        self._maybe_idle()
        return True

    def _spill_waiting(self) -> bool:
        return self._backlog is not None or self._orphans_seen or self.spill_path.exists()

    def _maybe_idle(self) -> None:
        """Idle: nothing queued, and no spill file waiting unless the last attempt failed."""
        spill_waiting = self._failures == 0 and self._spill_waiting()
        with self._lock:
            if not self._queue and not spill_waiting:
                self._idle.set()

    # -- posting -------------------------------------------------------------------
    def _delay(self, doublings: int, hint: float | None) -> float:
        """Exponential backoff, or the collector's Retry-After when longer; never over backoff_max."""
        backoff = self.backoff_base * 2 ** min(doublings, MAX_DOUBLINGS)
        return min(self.backoff_max, max(backoff, hint or 0.0))

    def _send(self, body: bytes) -> httpx.Response | None:
        try:
            return self._http.post(self.url, content=body)
        except Exception:  # no answer (refused, reset, timed out, garbage): worth another try
            return None

    def _post(self, lines: list[bytes], counter: str) -> bool:
        """Post one batch with retries; True when the collector has taken it (or refused it for
        good: retrying could not help)."""
        body = b"[" + b",".join(lines) + b"]"
        hint = None
        for attempt in range(self.max_retries):
            if attempt and self._stopping.wait(self._delay(attempt - 1, hint)):
                return False  # closing: the batch is spilled, not retried
            resp = self._send(body)
            if resp is None:
                hint = None
                continue
            verdict = self._verdict(resp, lines, counter)
            if verdict is not None:
                return verdict
            hint = retry_after_s(resp.headers)
        self._failures += 1
        self._down_until = time.monotonic() + self._delay(self._failures, hint)
        return False

    def _verdict(self, resp: httpx.Response, lines: list[bytes], counter: str) -> bool | None:
        """True: taken (or refused for good); False: a part failed; None: try again later."""
        status = resp.status_code
        if 200 <= status < 300:
            self._failures = 0
            self._down_until = 0.0
            self._reported = None
            self._count_delivered(resp, len(lines), counter)
            return True
        if status == 413 and len(lines) > 1:
            # over the collector's batch limit (aop.max_batch_bytes): send it in halves
            half = len(lines) // 2
            return self._post(lines[:half], counter) and self._post(lines[half:], counter)
        if status in RETRY_STATUS:
            return None
        if status in KEPT_STATUS or 300 <= status < 400:
            self._warn(status, f"collector answered {status} ({reason(resp)}); events are kept in the spill file")
            return None
        # the collector refused the batch itself (malformed): retrying cannot help
        log.warning(
            "agentwatch sdk: collector refused a batch of %d events with %s: %s", len(lines), status, reason(resp)
        )
        self.count("rejected", len(lines))
        return True

    def _warn(self, status: int, message: str) -> None:
        if self._reported != status:
            self._reported = status
            log.warning("agentwatch sdk: %s", message)

    def _count_delivered(self, resp: httpx.Response, n: int, counter: str) -> None:
        rejected = 0
        with contextlib.suppress(Exception):
            doc = resp.json()
            rejected = min(n, max(0, int(doc.get("rejected", 0)))) if isinstance(doc, dict) else 0
            if rejected:
                refused = [r for r in doc.get("results", []) if isinstance(r, dict) and not r.get("ok", True)]
                log.warning("agentwatch sdk: collector rejected %d events: %s", rejected, safe_text(refused[:5], 1000))
        self.count(counter, n - rejected)
        if rejected:
            self.count("rejected", rejected)

    # -- the spill file ----------------------------------------------------------
    def _spill_lines(self, lines: list[bytes]) -> None:
        """Append to the spill file; what does not fit under ``spill_max_bytes`` is dropped (the
        newest lines), counted, and warned about once until this transport claims the file for replay."""
        if not lines:
            return
        try:
            with self._spill_lock:
                kept = spill.append(self.spill_path, lines, self.spill_max_bytes)
                first_drop = kept < len(lines) and not self._full_reported
                self._full_reported |= first_drop
        except OSError as exc:  # nothing of these lines is in the file (see spill.append)
            self.count("dropped", len(lines))
            self.count("spill_failed", len(lines))
            log.warning(
                "agentwatch sdk: could not write the spill file %s (%s); %d events lost",
                self.spill_path,
                exc.strerror or type(exc).__name__,
                len(lines),
            )
            return
        self.count("spilled", kept)
        refused = spill.untold_flock_refusal(self.spill_path)  # logged here, outside the spill lock
        if refused is not None:
            log.warning(
                "agentwatch sdk: the filesystem of the spill file %s cannot lock it (%s); appends go on "
                "unlocked, so two processes sharing it could interleave a write that fails part-way",
                self.spill_path,
                refused,
            )
        if kept < len(lines):
            self.count("dropped", len(lines) - kept)
            self.count("spill_full", len(lines) - kept)
        if first_drop:
            log.warning(
                "agentwatch sdk: the spill file %s is full (spill_max_bytes=%d); new events are dropped "
                "until the collector answers and it is replayed",
                self.spill_path,
                self.spill_max_bytes,
            )

    def _claim(self) -> tuple[Path, int] | None:
        """Take the oldest spilled events for this process (an atomic rename, so two processes never
        both send them): a claim left over by an ended process first, then the spill file."""
        self._orphans_seen = False
        for source in [*spill.orphans(self.spill_path), self.spill_path]:
            claimed = spill.claim_name(self.spill_path)
            with spill.HELD_LOCK:
                spill.HELD.add(claimed.name)  # before it exists: no other transport takes it for an orphan
            try:
                with self._spill_lock:
                    os.replace(source, claimed)
                    self._full_reported &= source != self.spill_path  # room again: a new fill is news
            except OSError:
                self._release(claimed)
                continue
            spill.wait_for_appends(claimed)  # not under the spill lock: an append of this process may hold the file's
            self._orphans_seen = source != self.spill_path
            return claimed, 0
        return None

    def _replay(self) -> bool:
        """Send one claimed spill file a batch at a time (it may be of any size); True when all of
        it was delivered. What the collector does not take stays claimed, and is sent before
        anything newer on the next attempt."""
        claim = self._backlog or self._claim()
        if claim is None:
            return False
        path, offset = claim
        self._backlog = claim  # until every line is delivered (an error keeps it too)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                for start, chunk in spill.chunks(fh, self.batch_size, self._malformed(path)):
                    if not self._post(chunk, "replayed"):
                        self._backlog = (path, start)
                        return False
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("agentwatch sdk: could not read the spill file %s", path)
            return False
        self._backlog = None
        with contextlib.suppress(OSError):
            path.unlink()
        self._release(path)
        return True

    def _malformed(self, path: Path) -> Callable[[int], None]:
        """What to do with a line of the claim ``path`` that is no JSON event (the piece of a write
        cut short by an older version, or by a crash): skip it, count it once (an undelivered
        part of a claim is read again), and say so."""

        def skipped(at: int) -> None:
            mark = self._malformed_mark
            if mark is not None and mark[0] == path and at < mark[1]:
                return
            self._malformed_mark = (path, at + 1)
            self.count("spill_malformed")
            log.warning("agentwatch sdk: skipped a malformed line at byte %d of the spill file %s", at, path)

        return skipped

    def _release(self, path: Path) -> None:
        with spill.HELD_LOCK:
            spill.HELD.discard(path.name)

    def _give_back_backlog(self) -> None:
        """On close: an unfinished claim goes back to the spill file's name when that is free (a
        later process finds it there); otherwise it stays, released, and is replayed first."""
        if self._backlog is None:
            return
        path, offset = self._backlog
        self._backlog = None
        with contextlib.suppress(OSError):
            if offset:
                path = self._rest_of(path, offset)
            os.link(path, self.spill_path)  # never replaces a spill file written meanwhile
            path.unlink()
        self._release(path)

    def _rest_of(self, path: Path, offset: int) -> Path:
        """A claim holding only the lines of ``path`` from ``offset`` on (the ones not delivered)."""
        rest = spill.claim_name(self.spill_path)
        with spill.HELD_LOCK:
            spill.HELD.add(rest.name)
        with open(path, "rb") as fh, spill.open_private(rest) as out:
            fh.seek(offset)
            for _start, chunk in spill.chunks(fh, self.batch_size, self._malformed(path)):
                out.write(b"".join(line + b"\n" for line in chunk))
        path.unlink()
        self._release(path)
        return rest
