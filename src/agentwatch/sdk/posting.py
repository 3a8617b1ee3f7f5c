"""Posting a batch to the collector: retries, backoff, and what each answer means.

A batch is a JSON array posted to ``/events``. An answer that may change (408, 425, 429, 5xx,
no answer at all) is retried with exponential backoff, or after the collector's
``Retry-After`` when that is longer, never over ``backoff_max``. After the last try the
collector counts as down until the backoff runs out. A 413 is sent again in halves. A
credential problem or no collector at the URL (401, 403, 404, 405, 3xx) is no verdict on the
batch: it is kept, like a failure. Any other refusal is final: the events are counted as
``rejected``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import httpx

from agentwatch.net.retry_after import retry_after_s
from agentwatch.sdk.encoding import safe_text

log = logging.getLogger("agentwatch.sdk")

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Not a verdict on the batch: a credential problem, or no collector at this URL (a wrong path, a proxy's
# page, a redirect). The batch is kept (spilled) for when the collector is reachable, not counted as refused.
KEPT_STATUS = {401, 403, 404, 405}
MAX_DOUBLINGS = 32  # backoff_base * 2**n stops growing here (2**1024 is no float: the sender would crash)


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


class Collector:
    """One process's way to the collector: its HTTP client, and whether the collector is down.

    ``count(name, n)`` adds to the transport's counters; ``stopping`` cuts a backoff wait
    short when the transport closes."""

    def __init__(
        self,
        url: str,
        *,
        max_retries: int,
        backoff_base: float,
        backoff_max: float,
        new_client: Callable[[], httpx.Client],
        count: Callable[[str, int], None],
        stopping: threading.Event,
    ) -> None:
        self.url = url
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._new_client = new_client
        self._count = count
        self._stopping = stopping
        self.http: httpx.Client | None = None  # made with the sender thread, which closes it
        self._down_until = 0.0
        self._failures = 0
        self._reported: int | None = None  # the last status warned about (one warning per change)

    def connect(self) -> None:
        """Make this process's HTTP client, unless it is made already."""
        if self.http is None:
            self.http = self._new_client()

    def disconnect(self) -> None:
        if self.http is not None:
            self.http.close()

    def ready(self) -> bool:
        """Whether to try the collector now: it is not down, or its backoff has run out."""
        return time.monotonic() >= self._down_until

    def try_now(self) -> None:
        """End the backoff: the next attempt goes out at once."""
        self._down_until = 0.0

    @property
    def failing(self) -> bool:
        """The last batch could not be delivered."""
        return self._failures > 0

    def post(self, lines: list[bytes], counter: str) -> bool:
        """Post one batch with retries; True when the collector has taken it (or refused it for
        good: retrying could not help). What it took is counted in ``counter``."""
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

    def _delay(self, doublings: int, hint: float | None) -> float:
        """Exponential backoff, or the collector's Retry-After when longer; never over backoff_max."""
        backoff = self.backoff_base * 2 ** min(doublings, MAX_DOUBLINGS)
        return min(self.backoff_max, max(backoff, hint or 0.0))

    def _send(self, body: bytes) -> httpx.Response | None:
        try:
            return self.http.post(self.url, content=body)
        except Exception:  # no answer (refused, reset, timed out, garbage): worth another try
            return None

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
            return self.post(lines[:half], counter) and self.post(lines[half:], counter)
        if status in RETRY_STATUS:
            return None
        if status in KEPT_STATUS or 300 <= status < 400:
            self._warn(status, f"collector answered {status} ({reason(resp)}); events are kept in the spill file")
            return None
        # the collector refused the batch itself (malformed): retrying cannot help
        log.warning(
            "agentwatch sdk: collector refused a batch of %d events with %s: %s", len(lines), status, reason(resp)
        )
        self._count("rejected", len(lines))
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
        self._count(counter, n - rejected)
        if rejected:
            self._count("rejected", rejected)
