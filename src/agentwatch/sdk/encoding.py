"""How the SDK turns an agent's event into one JSON line, whatever the agent put in it.

An agent's payload holds whatever its tools returned: integers beyond 64 bits, keys JSON has
no form for, text with lone surrogates, objects with a failing ``__repr__``. None of that may
raise into the agent or lose the event: such values travel as text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson

log = logging.getLogger("agentwatch.sdk")


def safe_text(value: Any, limit: int, show: Callable[[Any], str] = repr) -> str:
    """``repr`` (or ``str``) of an agent's object, cut to ``limit``; never raises, whatever the
    object's ``__repr__`` does (the tool's own result or exception must reach the agent)."""
    try:
        return show(value)[:limit]
    except Exception:
        return f"<{type(value).__name__} object: not representable>"[:limit]


def _fallback(value: object) -> str:
    """Values JSON cannot carry (a tool's arbitrary input or output) travel as their repr."""
    return _utf8(safe_text(value, 1000))


def _utf8(text: str) -> str:
    """Text JSON can carry: a lone surrogate (a file name decoded with ``surrogateescape``) is
    written out as its escape, not a reason to lose the event."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: "a"} is sent as {"1": "a"}, not refused
_INT_RANGE = range(-(2**63), 2**64)  # the integers orjson encodes


def _key(key: Any) -> Any:
    if isinstance(key, str):
        return _utf8(key)
    if key is None or isinstance(key, float | bool) or (isinstance(key, int) and key in _INT_RANGE):
        return key
    return _fallback(key)


def _plain(value: Any, depth: int = 0) -> Any:
    """A copy orjson can encode: integers beyond 64 bits, keys it refuses and text that is not
    valid UTF-8 become text."""
    if depth > 200:
        return _fallback(value)
    if isinstance(value, str):
        return _utf8(value)
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
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a tuple key, a lone surrogate ...
        pass
    try:
        return orjson.dumps(_plain(event), default=_fallback, option=_JSON_OPTIONS)
    except Exception:
        log.exception("agentwatch sdk: could not encode a %s event; it is dropped", event.get("type"))
        return None


def is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
