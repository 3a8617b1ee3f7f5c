"""The copilot's summaries kept for a while, so asking again for the same context does not ask
the model again.

One entry per subject (``alert/<id>``, ``case/<id>``, ...), holding the summary and the SHA-256
of what it was made from (the prompt sent, the model, the backend and the answer's length). A
summary is reused only while that input is unchanged and the entry is younger than
``copilot.summary_cache_ttl_s``: when the subject changes so that its suggestions read
differently, the input differs and the model is asked afresh. At most
``copilot.summary_cache_entries`` subjects are kept, the least recently used going first. Only
summaries are kept, never a failure: a backend that failed is asked again next time.

One call per input at a time (single flight): a request finding no kept summary but a call under
way for the same subject and input waits for that call instead of making its own, and gets what
it answers, its failure included (shared, still not kept: the request after it asks afresh). The
call belongs to the cache, not to the request that started it: when that request's client goes
away (its task cancelled), the call goes on for those waiting and its summary is kept; it ends
within ``llm.timeout_s`` in any case, and then lets go of its key. At most
``copilot.summary_in_flight`` calls run at once; past it, a request for another input gets no
summary (:class:`Crowded`, said in ``summary_error``) rather than waiting or asking the model.

The cache lives in the server's memory, per node (two nodes may each ask once).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Kept:
    input_hash: str
    summary: dict[str, Any]
    stored_at: float


class Crowded(Exception):
    """As many summaries as ``copilot.summary_in_flight`` allows are being made already."""


def input_hash(messages: list[dict[str, str]], llm: Any) -> str:
    """SHA-256 of everything a summary is made from."""
    doc = {"messages": messages, "model": llm.model, "base_url": llm.base_url, "max_tokens": llm.max_tokens}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SummaryCache:
    """Summaries by subject, bounded in entries and age (least recently used first out)."""

    def __init__(self, max_entries: int, ttl_s: float, max_in_flight: int) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.max_in_flight = max_in_flight
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._lock = threading.Lock()
        # (subject, input hash) -> the one call making it; touched only on the event loop
        self._flights: dict[tuple[str, str], asyncio.Task[dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def in_flight(self) -> int:
        """Calls under way."""
        return len(self._flights)

    async def made(self, subject: str, made_from: str, make: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """The summary of ``subject`` made from ``made_from``: the kept one, else the answer of
        the call under way for it, else of a new call (``make()``). Raises what the call raised,
        or :class:`Crowded`."""
        kept = self.get(subject, made_from)
        if kept is not None:
            return kept
        key = (subject, made_from)
        flight = self._flights.get(key)
        if flight is None:
            if len(self._flights) >= self.max_in_flight:
                raise Crowded(
                    f"copilot.summary_in_flight ({self.max_in_flight}): as many summaries are being made"
                    " already; ask again shortly"
                )
            flight = asyncio.create_task(self._fly(key, make), name=f"agentwatch-copilot-summary-{subject}")
            self._flights[key] = flight
            flight.add_done_callback(lambda done, k=key: self._landed(k, done))
        # shielded: a caller cancelled stops waiting, the call goes on for the others
        return dict(await asyncio.shield(flight))

    async def _fly(self, key: tuple[str, str], make: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            summary = await make()
            self.put(key[0], key[1], summary)
            return summary
        finally:  # before any waiter wakes: the next request finds the kept summary or asks anew
            self._landed(key, asyncio.current_task())

    def _landed(self, key: tuple[str, str], flight: asyncio.Task[Any] | None) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if flight is not None and flight.done() and not flight.cancelled():
            flight.exception()  # retrieved: a failure nobody waited for is not reported as lost

    def get(self, subject: str, made_from: str) -> dict[str, Any] | None:
        """The summary kept for ``subject`` when it was made from ``made_from`` and is fresh."""
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(subject)
            if kept is None:
                return None
            if kept.input_hash != made_from or now - kept.stored_at >= self.ttl_s:
                del self._kept[subject]
                return None
            self._kept.move_to_end(subject)
            return dict(kept.summary)

    def put(self, subject: str, made_from: str, summary: dict[str, Any]) -> None:
        with self._lock:
            self._kept[subject] = Kept(made_from, dict(summary), time.monotonic())
            self._kept.move_to_end(subject)
            while len(self._kept) > self.max_entries:
                self._kept.popitem(last=False)


def cache_of(app_state: Any, settings: Any) -> SummaryCache:
    """The server's summary cache (made on first use, from ``[copilot]``)."""
    cache = getattr(app_state, "copilot_summaries", None)
    if cache is None:
        cache = SummaryCache(settings.summary_cache_entries, settings.summary_cache_ttl_s, settings.summary_in_flight)
        app_state.copilot_summaries = cache
    return cache
