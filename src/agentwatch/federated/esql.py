"""Elasticsearch ES|QL: ``FROM index | WHERE <time> | WHERE <filter> | LIMIT N``.

Fields are written in backticks; values are double-quoted string literals with a backslash, a
quote, a line break, a return and a tab escaped. ``contains`` and ``startswith`` compare the
lower-cased field with the lower-cased value through ``LOCATE`` and ``STARTS_WITH``, which take
the value as plain text (``LIKE`` would read ``*`` and ``?`` in it as wildcards).
"""

from __future__ import annotations

from agentwatch.federated.dialect import Dialect, Window
from agentwatch.federated.language import Comparison

# Elastic Common Schema names by default.
DEFAULT_FIELDS = {
    "ts": "@timestamp",
    "event_id": "event.id",
    "event_type": "event.action",
    "source": "event.module",
    "severity": "event.severity",
    "session_id": "session.id",
    "agent": "agent.name",
    "host": "host.name",
    "process": "process.name",
    "pid": "process.pid",
    "trace_id": "trace.id",
}
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
OPS = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


class Esql(Dialect):
    def field(self, name: str) -> str:
        return f"`{name}`"  # the field map's names never hold a backtick

    def string(self, value: str) -> str:
        return '"' + "".join(ESCAPES.get(ch, ch) for ch in value) + '"'

    def missing(self, ref: str) -> str:
        return f"{ref} IS NULL"

    def compare(self, ref: str, c: Comparison) -> str:
        if c.op == "contains":
            return f"LOCATE(TO_LOWER({ref}), {self.string(str(c.value).lower())}) > 0"
        if c.op == "startswith":
            return f"STARTS_WITH(TO_LOWER({ref}), {self.string(str(c.value).lower())})"
        if c.op == "in":
            return f"{ref} IN ({', '.join(self.literal(v) for v in c.values)})"
        return f"{ref} {OPS[c.op]} {self.literal(c.value)}"


def render(condition: str, index: str, ts_field: str, window: Window, limit: int) -> str:
    e = Esql()
    ts = e.field(ts_field)
    # TO_DATETIME reads only yyyy-MM-dd'T'HH:mm:ss.SSS'Z' (anything else is null, and keeps no row)
    start, end = e.string(window.iso_ms(window.start, up=False)), e.string(window.iso_ms(window.end, up=True))
    when = f"{ts} >= TO_DATETIME({start}) AND {ts} <= TO_DATETIME({end})"
    return f"FROM {index} | WHERE {when} | WHERE {condition} | LIMIT {limit}"
