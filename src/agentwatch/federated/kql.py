"""Microsoft Sentinel / Log Analytics KQL: ``Table | where <time> | where <filter> | take N``.

Fields are written ``['name']``; values are double-quoted string literals where a backslash, a
quote, a line break, a return and a tab are written as KQL's escapes (the query language
refuses every other control character), so a value can never end its literal. ``contains`` and
``startswith`` are KQL's own case-insensitive operators, which take the value as plain text.
A string is never null in KQL (a missing one is ``""``), so ``isempty`` stands for a missing
field, and ``!=`` or an empty value on a text field first asks ``isnotempty``.
"""

from __future__ import annotations

from agentwatch.federated.dialect import Dialect, Window
from agentwatch.federated.language import FIELDS, Comparison

DEFAULT_FIELDS = {
    "ts": "TimeGenerated",
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
ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
OPS = {"=": "==", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "contains": "contains"}


class Kql(Dialect):
    and_word = "and"
    or_word = "or"

    def field(self, name: str) -> str:
        return f"['{name}']"  # the field map's names never hold a quote or a bracket

    def string(self, value: str) -> str:
        return '"' + "".join(ESCAPES.get(ch, ch) for ch in value) + '"'

    def number(self, value: int) -> str:
        return f"long({int(value)})"

    def negate(self, text: str) -> str:
        return f"not({text})"

    def missing(self, ref: str) -> str:
        return f"isempty({ref})"

    def present_compare(self, ref: str, c: Comparison) -> str:
        # a missing string reads as "" in KQL (strings are never null): != and an empty value
        # would match it, so those comparisons first ask for a value
        text = self.compare(ref, c)
        if FIELDS[c.field] == "text" and (c.op == "!=" or "" in c.values):
            return f"isnotempty({ref}) and {text}"
        return text

    def compare(self, ref: str, c: Comparison) -> str:
        if c.op == "in":
            return f"{ref} in ({', '.join(self.literal(v) for v in c.values)})"
        if c.op == "startswith":
            return f"{ref} startswith {self.literal(c.value)}"
        return f"{ref} {OPS[c.op]} {self.literal(c.value)}"


def render(condition: str, table: str, ts_field: str, window: Window, limit: int) -> str:
    k = Kql()
    when = f"{k.field(ts_field)} between (datetime({window.iso(window.start)}) .. datetime({window.iso(window.end)}))"
    return f"{table} | where {when} | where {condition} | take {limit}"
