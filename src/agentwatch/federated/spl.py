"""Splunk SPL: ``search index=... earliest=... latest=... | where <filter> | head N``.

The filter runs in ``where`` (an eval expression), where a value is only ever inside a
double-quoted string literal: a backslash and a quote are escaped with a backslash, and a value
holding a line break or tab is written as ``urldecode("%0A...")`` so the query text never holds
a raw control character. ``contains`` and ``startswith`` are case-insensitive ``match`` calls
whose regular expression is built here, every character but ASCII letters and digits written as
a ``\\x{HH}`` escape, so nothing a user types is read as regex syntax or as a wildcard (which
``like`` and the ``search`` command's ``*`` could not guarantee).
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


class Spl(Dialect):
    def field(self, name: str) -> str:
        return f"'{name}'"  # the field map's names never hold a quote (dialect.FIELD_NAME)

    def string(self, value: str) -> str:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            return f'urldecode("{quote(value, safe="")}")'  # percent-encoded: no quote, no backslash left
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def compare(self, ref: str, c: Comparison) -> str:
        if c.op == "contains":
            return f"match({ref}, {self.string('(?i)' + regex(str(c.value)))})"
        if c.op == "startswith":
            return f"match({ref}, {self.string('(?i)^' + regex(str(c.value)))})"
        if c.op == "in":
            return f"in({ref}, {', '.join(self.literal(v) for v in c.values)})"
        return f"{ref}{OPS[c.op]}{self.literal(c.value)}"


def render(condition: str, index: str, window: Window, limit: int) -> str:
    earliest, latest = math.floor(window.start), math.ceil(window.end)
    head = f"search index={Spl().string(index)} earliest={earliest} latest={latest}"
    return f"{head} | where {condition} | head {limit}"
