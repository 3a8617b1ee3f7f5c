"""What every translator shares: the walk over the query's tree and the time window.

A dialect overrides the few methods that differ (how a field is named, how a string is
written, how one comparison reads, the words for AND / OR / NOT); :meth:`Dialect.condition`
does the walking. Field names come from the target's field map (configuration, checked
against :data:`FIELD_NAME` when the settings are read), values only from the parsed query and
only through the dialect's own literal writer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass

from agentwatch.federated.language import And, Comparison, Node, Not, Or, Value

LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant a datetime holds
FIELD_NAME = r"^[A-Za-z_@][A-Za-z0-9_.@-]{0,127}$"


@dataclass(frozen=True)
class Window:
    """The time range of a query: epoch seconds, start <= end."""

    start: float
    end: float

    def iso(self, which: float) -> str:
        """RFC 3339 in UTC with microseconds; the year always four digits (``%Y`` drops the
        leading zeros of a year before 1000, which no target reads)."""
        d = dt.datetime.fromtimestamp(which, dt.UTC)
        return f"{d.year:04d}-{d:%m-%dT%H:%M:%S}.{d.microsecond:06d}Z"

    def iso_ms(self, which: float, *, up: bool) -> str:
        """Like :meth:`iso` with milliseconds, rounded down (a start) or up (an end), so the
        window only ever widens."""
        ms = min(math.ceil(which * 1000) if up else math.floor(which * 1000), LAST_MS)
        d = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
        return f"{d.year:04d}-{d:%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z"


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

    def missing(self, ref: str) -> str:
        """True where the event has no value for ``ref``."""
        raise NotImplementedError

    def present_compare(self, ref: str, c: Comparison) -> str:
        """:meth:`compare`, false where the field is missing (a dialect whose missing value could
        pass the comparison adds the guard)."""
        return self.compare(ref, c)

    def condition(self, node: Node, fields: Mapping[str, str], negated: bool = False) -> str:
        """The filter. A missing field means the same on every target, the local store's: a
        comparison on a field the event does not have is false, whatever its operator
        (``host != "x"`` does not match an event without a host), and NOT makes it true
        (``NOT host = "x"`` does). So ``NOT`` is pushed down to the comparisons (De Morgan),
        and a negated one is written ``<missing> OR NOT (<comparison>)``."""
        if isinstance(node, Comparison):
            ref = self.field(fields[node.field])
            if negated:
                return f"{self.missing(ref)} {self.or_word} {self.negate(self.compare(ref, node))}"
            return self.present_compare(ref, node)
        if isinstance(node, Not):
            return self.condition(node.part, fields, not negated)
        assert isinstance(node, And | Or)  # noqa: S101 (the tree's invariant, for the type checker)
        word = self.and_word if isinstance(node, And) != negated else self.or_word  # De Morgan
        return f" {word} ".join(f"({self.condition(p, fields, negated)})" for p in node.parts)
