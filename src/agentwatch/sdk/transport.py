"""The SDK's delivery core: a bounded queue drained by one background thread.

The agent's thread only appends to a bounded in-memory queue (never network I/O),
so reporting can neither raise into the agent nor stall it. The sender thread
posts batches (a JSON array on ``POST /events``), retries with exponential
backoff, and when the collector stays unreachable it appends the events to a
spill file (NDJSON). Once the collector answers again the spill file is replayed
before new events. Because the server treats ``(session_id, sequence)`` as
idempotent, a batch resent after an uncertain failure is never stored twice.

When the queue is full, new events go straight to the spill file rather than
being dropped; only when the spill file cannot be written either is an event
lost, and that is counted in ``stats["dropped"]``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

log = logging.getLogger("agentwatch.sdk")

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Not a verdict on the batch: a credential problem, or no collector at this URL (a wrong path, a proxy's
# page). The batch is kept (spilled) for when the collector is reachable, not counted as refused.
KEPT_STATUS = {401, 403, 404, 405}


def safe_text(value: Any, limit: int, show: Callable[[Any], str] = repr) -> str:
    """``repr`` (or ``str``) of an agent's object, cut to ``limit``; never raises, whatever the
    object's ``__repr__`` does (the tool's own result or exception must reach the agent)."""
    try:
        return show(value)[:limit]
    except Exception:
        return f"<{type(value).__name__} object: not representable>"[:limit]


def _fallback(value: object) -> str:
    """Values JSON cannot carry (a tool's arbitrary input or output) travel as their repr."""
    return safe_text(value, 1000)


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: "a"} is sent as {"1": "a"}, not refused
_INT_RANGE = range(-(2**63), 2**64)  # the integers orjson encodes


def _key(key: Any) -> Any:
    if key is None or isinstance(key, str | float | bool) or (isinstance(key, int) and key in _INT_RANGE):
        return key
    return _fallback(key)


def _plain(value: Any, depth: int = 0) -> Any:
    """A copy orjson can encode: integers beyond 64 bits and keys it refuses become text."""
    if depth > 200:
        return _fallback(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT_RANGE:
        return _fallback(value)
    if isinstance(value, dict):
        return {_key(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    return value


def encode_event(event: dict[str, Any]) -> bytes | None:
    """One event as JSON, whatever an agent put in its payload; None when it cannot be encoded."""
    try:
        return orjson.dumps(event, default=_fallback, option=_JSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a tuple key, ...
        pass
    try:
        return orjson.dumps(_plain(event), default=_fallback, option=_JSON_OPTIONS)
    except Exception:
        log.exception("agentwatch sdk: could not encode a %s event; it is dropped", event.get("type"))
        return None


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def default_spill_path() -> Path:
    return Path(os.environ.get("AGENTWATCH_SDK_SPILL", "~/.agentwatch/sdk-spill.jsonl")).expanduser()


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
        max_retries: int = 3,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        spill_path: str | Path | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/events"
        headers = {"Content-Type": "application/json", "User-Agent": "agentwatch-sdk"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self.timeout = timeout
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.queue_size = max(1, queue_size)
        self.max_retries = max(1, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.spill_path = Path(spill_path) if spill_path is not None else default_spill_path()
        self.stats = {"sent": 0, "spilled": 0, "replayed": 0, "rejected": 0, "dropped": 0}
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._spill_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        if not self.spill_path.exists():
            self._idle.set()
        self._stop = False
        self._down_until = 0.0
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="agentwatch-sdk", daemon=True)
        self._thread.start()

    # -- the agent's side (never blocks on the network, never raises) ----------
    def put(self, event: dict[str, Any]) -> None:
        try:
            if self._stop:  # closed: no sender thread drains the queue any more
                self._spill([event])
                return
            with self._lock:
                if len(self._queue) < self.queue_size:
                    self._queue.append(event)
                    self._idle.clear()
                    full = False
                else:
                    full = True
            if full:
                self._spill([event])
            elif len(self._queue) >= self.batch_size:
                self._wake.set()
        except Exception:  # reporting must never break the agent
            log.exception("agentwatch sdk: could not queue an event")

    def flush(self, timeout: float | None = None) -> bool:
        """Try to deliver now (the spill file first); wait until everything is delivered, or
        spilled after a failed attempt. False when ``timeout`` ran out first."""
        self._down_until = 0.0
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(self.timeout * 2 if timeout is None else timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what can be delivered within ``timeout``; spill the rest; stop the thread."""
        limit = self.timeout * 2 if timeout is None else timeout
        deadline = time.monotonic() + limit
        self.flush(limit)
        self._stop = True
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))  # the whole close within ``timeout``
        with self._lock:
            rest = list(self._queue)
            self._queue.clear()
        if rest:
            self._spill(rest)
        if not self._thread.is_alive():
            self._http.close()

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- the sender thread -------------------------------------------------------
    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            n = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stop:
                    self._http.close()  # close() may have stopped waiting for this thread
                    return
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            try:
                self._step()
            except Exception:
                log.exception("agentwatch sdk: sender step failed")
                time.sleep(self.flush_interval)

    def _step(self) -> None:
        if time.monotonic() >= self._down_until and self.spill_path.exists():
            self._replay()
        batch = self._take()
        if not batch:
            self._maybe_idle()
            return
        encoded = self._encode(batch)
        if time.monotonic() < self._down_until:
            self._spill_lines(encoded)
        elif not encoded or self._post(encoded):
            self.stats["sent"] += len(encoded)
        else:
            self._spill_lines(encoded)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        """Idle: nothing queued, and no spill file waiting while the collector is reachable."""
        spill_waiting = self.spill_path.exists() and time.monotonic() >= self._down_until
        with self._lock:
            if not self._queue and not spill_waiting:
                self._idle.set()

    def _encode(self, events: list[dict[str, Any]]) -> list[bytes]:
        encoded = [b for b in map(encode_event, events) if b is not None]
        self.stats["dropped"] += len(events) - len(encoded)
        return encoded

    def _post(self, encoded: list[bytes]) -> bool:
        """Post one batch (encoded events) with retries; True when the collector has taken it."""
        body = b"[" + b",".join(encoded) + b"]"
        for attempt in range(self.max_retries):
            if self._stop and attempt > 0:
                return False
            try:
                resp = self._http.post(self.url, content=body)
            except httpx.HTTPError:
                resp = None
            if resp is not None and resp.status_code < 300:
                self._failures = 0
                self._down_until = 0.0
                self._count_rejected(resp)
                return True
            if resp is not None and resp.status_code == 413 and len(encoded) > 1:
                # over the collector's batch limit (aop.max_batch_bytes): send it in halves
                half = len(encoded) // 2
                return self._post(encoded[:half]) and self._post(encoded[half:])
            if resp is not None and resp.status_code not in RETRY_STATUS | KEPT_STATUS:
                # the collector refused the batch itself (malformed): retrying cannot help
                log.warning("agentwatch sdk: batch refused with %s", resp.status_code)
                self.stats["rejected"] += len(encoded)
                return True
            time.sleep(min(self.backoff_max, self.backoff_base * (2**attempt)))
        self._failures += 1
        self._down_until = time.monotonic() + min(self.backoff_max, self.backoff_base * (2**self._failures))
        return False

    def _count_rejected(self, resp: httpx.Response) -> None:
        with contextlib.suppress(Exception):
            doc = resp.json()
            rejected = int(doc.get("rejected", 0)) if isinstance(doc, dict) else 0
            if rejected:
                self.stats["rejected"] += rejected
                log.warning("agentwatch sdk: collector rejected %d events: %s", rejected, doc.get("results"))

    # -- the spill file ----------------------------------------------------------
    def _spill(self, events: list[dict[str, Any]]) -> None:
        self._spill_lines(self._encode(events))

    def _spill_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            with self._spill_lock:
                self.spill_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.spill_path, "ab") as fh:
                    fh.write(b"".join(line + b"\n" for line in lines))
            self.stats["spilled"] += len(lines)
        except OSError:
            self.stats["dropped"] += len(lines)
            log.exception("agentwatch sdk: could not write the spill file; %d events lost", len(lines))

    def _replay(self) -> None:
        """Claim the spill file (an atomic rename, so two processes never both send it) and send it."""
        claimed = self.spill_path.with_name(f"{self.spill_path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.replay")
        with self._spill_lock:
            try:
                os.replace(self.spill_path, claimed)
            except OSError:
                return
        try:
            # read a batch at a time: a long outage may have left a spill file of any size
            with open(claimed, "rb") as fh:
                chunk: list[bytes] = []
                for raw in itertools.chain(fh, [None]):
                    line = raw.strip() if raw is not None else b""
                    if line and _is_json(line):
                        chunk.append(line)
                    if not chunk or (len(chunk) < self.batch_size and raw is not None):
                        continue
                    if not self._post(chunk):
                        self._spill_lines(chunk)
                        self._spill_rest(fh)
                        return
                    self.stats["replayed"] += len(chunk)
                    chunk = []
        except OSError:
            log.exception("agentwatch sdk: could not read the spill file %s", claimed)
        finally:
            with contextlib.suppress(OSError):
                claimed.unlink()

    def _spill_rest(self, fh: Any) -> None:
        """Put the lines not yet replayed back into the spill file, a batch at a time."""
        while True:
            lines = [line.strip() for line in itertools.islice(fh, self.batch_size)]
            if not lines:
                return
            self._spill_lines([line for line in lines if line])
