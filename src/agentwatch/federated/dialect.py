"""What every translator shares: the walk over the query's tree and the time window.

A dialect overrides the few methods that differ (how a field is named, how a string is
written, how one comparison reads, the words for AND / OR / NOT); :meth:`Dialect.condition`
does the walking. Field names come from the target's field map (configuration, checked
against :data:`FIELD_NAME` when the settings are read), values only from the parsed query and
only through the dialect's own literal writer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from agentwatch.federated.language import And, Comparison, Node, Not, Or, Value

FIELD_NAME = r"^[A-Za-z_@][A-Za-z0-9_.@-]{0,127}$"


@dataclass(frozen=True)
class Window:
    """The time range of a query: epoch seconds, start <= end."""

    start: float
    end: float

    def iso(self, which: float) -> str:
        return dt.datetime.fromtimestamp(which, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Dialect:
    and_word = "AND"
    or_word = "OR"

    def field(self, name: str) -> str:
        raise NotImplementedError

    def string(self, value: str) -> str:
        raise NotImplementedError

    def number(self, value: int) -> str:
        return str(int(value))

    def literal(self, value: Value) -> str:
        return self.number(value) if isinstance(value, int) else self.string(value)

    def negate(self, text: str) -> str:
        return f"NOT ({text})"

    def compare(self, ref: str, c: Comparison) -> str:
        """``ref`` (the quoted target field) compared as ``c`` says."""
        raise NotImplementedError

    def condition(self, node: Node, fields: Mapping[str, str]) -> str:
        if isinstance(node, Comparison):
            return self.compare(self.field(fields[node.field]), node)
        if isinstance(node, Not):
            return self.negate(self.condition(node.part, fields))
        word = self.and_word if isinstance(node, And) else self.or_word
        assert isinstance(node, And | Or)  # noqa: S101 (the tree's invariant, for the type checker)
        return f" {word} ".join(f"({self.condition(p, fields)})" for p in node.parts)
