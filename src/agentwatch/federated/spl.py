"""Splunk SPL: ``search index=... earliest=... latest=... | where <filter> | head N``.

The filter runs in ``where`` (an eval expression), where a value is only ever inside a
double-quoted string literal: a backslash and a quote are escaped with a backslash, and a value
holding a line break or tab is written as ``urldecode("%0A...")`` so the query text never holds
a raw control character. ``contains`` and ``startswith`` are case-insensitive ``match`` calls
whose regular expression is built here, every character but ASCII letters and digits written as
a ``\\x{HH}`` escape, so nothing a user types is read as regex syntax or as a wildcard (which
``like`` and the ``search`` command's ``*`` could not guarantee); a value beyond ASCII puts
PCRE in UTF mode with ``(*UTF)`` (:func:`ignore_case`).
"""

from __future__ import annotations

import math
from urllib.parse import quote

from agentwatch.federated.dialect import Dialect, Window
from agentwatch.federated.language import Comparison

DEFAULT_FIELDS = {
    "event_id": "event_id",
    "event_type": "event_type",
    "source": "source",
    "severity": "severity",
    "session_id": "session_id",
    "agent": "agent",
    "host": "host",
    "process": "process",
    "pid": "pid",
    "trace_id": "trace_id",
}
OPS = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _plain(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def regex(value: str) -> str:
    """``value`` as a regular expression matching exactly it."""
    return "".join(ch if _plain(ch) else f"\\x{{{ord(ch):x}}}" for ch in value)


def ignore_case(value: str, *, anchored: bool) -> str:
    """The case-insensitive pattern for ``contains`` (``anchored``: ``startswith``). A value
    beyond ASCII starts the pattern with ``(*UTF)``: without UTF mode PCRE reads ``\\x{e9}`` as
    the byte 0xE9 (never the two bytes of a UTF-8 ``é``), refuses ``\\x{..}`` past 0xFF and folds
    only ASCII case."""
    utf = "" if value.isascii() else "(*UTF)"
    return f"{utf}(?i){'^' if anchored else ''}{regex(value)}"


class Spl(Dialect):
    def field(self, name: str) -> str:
        return f"'{name}'"  # the field map's names never hold a quote (dialect.FIELD_NAME)

    def string(self, value: str) -> str:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            return f'urldecode("{quote(value, safe="")}")'  # percent-encoded: no quote, no backslash left
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def missing(self, ref: str) -> str:
        return f"isnull({ref})"

    def compare(self, ref: str, c: Comparison) -> str:
        if c.op in ("contains", "startswith"):
            pattern = ignore_case(str(c.value), anchored=c.op == "startswith")
            return f"match({ref}, {self.string(pattern)})"
        if c.op == "in":
            return f"in({ref}, {', '.join(self.literal(v) for v in c.values)})"
        return f"{ref}{OPS[c.op]}{self.literal(c.value)}"


def before_epoch(window: Window) -> bool:
    """Whether ``window`` starts before 1970: ``earliest=`` takes epoch seconds, and a negative
    number there is not a time before 1970 (the API refuses such a window for Splunk)."""
    return window.start < 0


def render(condition: str, index: str, window: Window, limit: int) -> str:
    if before_epoch(window):
        raise ValueError("a Splunk time range cannot start before 1970-01-01T00:00:00Z")
    # Splunk counts whole epoch seconds, ``earliest`` in and ``latest`` out; the window's end is
    # in (as KQL's ``between`` and ES|QL's ``<=`` take it), so ``latest`` is the second after the
    # one the end falls in: an event at the end itself, even on a whole second, is found.
    earliest, latest = math.floor(window.start), math.floor(window.end) + 1
    head = f"search index={Spl().string(index)} earliest={earliest} latest={latest}"
    return f"{head} | where {condition} | head {limit}"
