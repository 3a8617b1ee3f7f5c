"""The copilot's summaries kept for a while, so asking again for the same context does not ask
the model again.

One entry per subject (``alert/<id>``, ``case/<id>``, ...), holding the summary and the SHA-256
of what it was made from (the prompt sent, the model, the backend and the answer's length). A
summary is reused only while that input is unchanged and the entry is younger than
``copilot.summary_cache_ttl_s``: when the subject changes so that its suggestions read
differently, the input differs and the model is asked afresh. At most
``copilot.summary_cache_entries`` subjects are kept, the least recently used going first. Only
summaries are kept, never a failure: a backend that failed is asked again next time.

The cache lives in the server's memory, per node.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Kept:
    input_hash: str
    summary: dict[str, Any]
    stored_at: float


def input_hash(messages: list[dict[str, str]], llm: Any) -> str:
    """SHA-256 of everything a summary is made from."""
    doc = {"messages": messages, "model": llm.model, "base_url": llm.base_url, "max_tokens": llm.max_tokens}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SummaryCache:
    """Summaries by subject, bounded in entries and age (least recently used first out)."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kept)

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
        cache = SummaryCache(settings.summary_cache_entries, settings.summary_cache_ttl_s)
        app_state.copilot_summaries = cache
    return cache
