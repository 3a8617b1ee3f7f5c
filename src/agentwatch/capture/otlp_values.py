"""The numbers the OTLP mapping reads, checked before it reads them.

Timestamps must lie in 0..2**64-1 ns; ``process.pid`` and the token counts, when they are
numbers (or digit strings), must be whole numbers from 0 to 2**53, else the span or log record
is refused with an :class:`ItemError` naming the attribute. Content that came as JSON text is
parsed defensively (:func:`json_value`), and what is serialised for storage must fit the
store's serialiser (:func:`dumps`).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from agentwatch.events.model import EventError

MAX_NS = 2**64 - 1  # OTLP timestamps are fixed64 nanoseconds since the epoch
MAX_COUNT = 2**53  # pid and token counts: any real one is far smaller, and sums stay exact and storable
TOKEN_KEYS = (
    ("gen_ai.usage.input_tokens", "prompt_tokens"),
    ("gen_ai.usage.prompt_tokens", "prompt_tokens"),
    ("gen_ai.usage.output_tokens", "completion_tokens"),
    ("gen_ai.usage.completion_tokens", "completion_tokens"),
    ("llm.usage.total_tokens", "total_tokens"),
    ("gen_ai.usage.cache_read.input_tokens", "cached_tokens"),
)


class ItemError(EventError):
    """Span or log record ``index`` broke a rule; ``field`` is named relative to it (``resource.`` for its
    resource, OTLP/JSON names: ``attributes[gen_ai.usage.input_tokens]``, ``startTimeUnixNano``)."""

    def __init__(self, index: int, field: str, rule: str) -> None:
        super().__init__(field, rule)
        self.index = index


def json_value(v: Any) -> Any:
    """A value sent as JSON text (messages, tool arguments) parsed; anything else as it came."""
    if isinstance(v, str) and v[:1] in ("[", "{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def count(v: Any, field: str) -> int | None:
    """A pid or token count: None when absent or not a number at all (a name, a list: ignored, as
    before); a number or digit string that is not a whole number in 0..2**53 raises EventError."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        if not (v.isascii() and v.isdigit()):
            return None
        if len(v) > 20:
            raise EventError(field, f"must be a whole number from 0 to {MAX_COUNT}")
        v = int(v)
    if isinstance(v, float):
        if not math.isfinite(v) or not 0 <= v <= MAX_COUNT:
            raise EventError(field, f"must be a whole number from 0 to {MAX_COUNT}")
        return int(v)
    if isinstance(v, int):
        if not 0 <= v <= MAX_COUNT:
            raise EventError(field, f"must be a whole number from 0 to {MAX_COUNT}")
        return v
    return None


def whole(v: Any) -> int | None:
    """:func:`count` for values already checked; anything invalid is None, never an exception."""
    try:
        return count(v, "")
    except EventError:
        return None


def attr(key: str) -> str:
    return f"attributes[{key}]"


def _check_ns(ns: Any, field: str) -> None:
    if not isinstance(ns, int) or isinstance(ns, bool) or not 0 <= ns <= MAX_NS:
        raise EventError(field, "out of range")


def _check_common(item: dict[str, Any]) -> None:
    res = item.get("resource")
    if isinstance(res, dict):
        count(res.get("process.pid"), "resource." + attr("process.pid"))
    attrs = item.get("attributes")
    if isinstance(attrs, dict):
        for key, _ in TOKEN_KEYS:
            count(attrs.get(key), attr(key))


def check_span(s: dict[str, Any]) -> None:
    """Raises EventError (field relative to the span) for a value the mapping cannot turn into a number."""
    _check_ns(s.get("start_ns") or 0, "startTimeUnixNano")
    _check_ns(s.get("end_ns") or 0, "endTimeUnixNano")
    for i, e in enumerate(s.get("events") or []):
        _check_ns(e.get("time_ns") or 0, f"events[{i}].timeUnixNano")
    _check_common(s)


def check_log(r: dict[str, Any]) -> None:
    """Raises EventError (field relative to the log record) as :func:`check_span` does."""
    _check_ns(r.get("time_ns") or 0, "timeUnixNano")
    _check_common(r)


def dumps(v: Any, field: str, **kw: Any) -> bytes:
    """orjson.dumps, refusing (naming ``field``) what cannot be stored: nesting past orjson's 255 levels."""
    try:
        return orjson.dumps(v, **kw)
    except TypeError:
        raise EventError(field, "nested too deeply (or holds a value JSON cannot store)") from None
