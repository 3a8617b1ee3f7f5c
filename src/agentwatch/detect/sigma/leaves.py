"""Leaf matchers: one field compared with one kind of Sigma value.

A leaf is data (``kind``, ``ref``, ``values``) until :func:`leaf_function` turns it
into a closure over an :class:`EventView`. Leaves of the same kind on the same field
that are OR-linked (``CommandLine|contains: [a, b, c]``) are merged into one leaf, so
a list of suffixes is one ``str.endswith(tuple)`` call, a list of exact values one
set lookup, and a long list of substrings one Aho-Corasick scan.

String kinds (``eq``, ``prefix``, ``suffix``, ``contains``, ``glob``, ``wild`` and their
case-sensitive ``c`` forms) are built in ``strings.py``; this module has the others
(regex, numbers, booleans, CIDR, field references, existence, null, timestamp parts).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentwatch.detect.fieldmap.accessors import MISSING
from agentwatch.detect.fieldmap.pipelines import FieldRef
from agentwatch.detect.safe_regex import SafeRegex
from agentwatch.detect.sigma.strings import CASED_KINDS, STRING_KINDS, Matcher, anchor_char, string_matcher
from agentwatch.detect.sigma.view import EventView

__all__ = ["NUMBER_KEY", "Leaf", "Matcher", "anchor_char", "as_number", "elements", "leaf_function"]

MERGEABLE = STRING_KINDS | CASED_KINDS | {"num"}
# A ``num`` leaf's literals are its numbers (``repr(float)``) under the field key + NUMBER_KEY: the
# scanner tests the field's value with ``as_number``, the leaf's own test, instead of looking for text
# (31 is also written "0x1F", "3.1e1", "3_1" or in fullwidth digits, none of which contains "31").
NUMBER_KEY = "#number"


@dataclass
class Leaf:
    """One field test. ``values`` are patterns/literals; ``literals`` feed the prefilter."""

    kind: str
    ref: FieldRef
    values: list[Any] = field(default_factory=list)
    literals: list[str | None] = field(default_factory=list)  # per value; None = no literal
    arg: Any = None
    engine: str | None = None  # regex engine when kind == "re"

    def merge_key(self) -> tuple[str, str] | None:
        if self.kind in MERGEABLE:
            return (self.kind, self.ref.key)
        return None


def as_number(value: Any) -> float | None:
    """The number a field value stands for, as ``num`` and ``cmp`` leaves compare it (None: not a number)."""
    if type(value) is bool:
        return None
    if isinstance(value, (int, float)):
        return _float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            if text[:2].lower() == "0x":
                try:
                    return _float(int(text, 16))
                except ValueError:
                    return None
    return None


def _float(number: float) -> float:
    try:
        return float(number)
    except OverflowError:  # an int beyond the float range (it runs on every event's value: never raise)
        return math.inf if number > 0 else -math.inf


def elements(value: Any) -> list[Any]:
    if value is MISSING or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


COMPARE: dict[str, Callable[[float, float], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "neq": lambda a, b: a != b,
}


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None
    return None


TIME_PARTS: dict[str, Callable[[datetime], int]] = {
    "minute": lambda d: d.minute,
    "hour": lambda d: d.hour,
    "day": lambda d: d.day,
    "week": lambda d: d.isocalendar()[1],
    "month": lambda d: d.month,
    "year": lambda d: d.year,
}


def leaf_function(leaf: Leaf) -> Matcher:
    """The closure that evaluates ``leaf`` on an event view."""
    kind, ref = leaf.kind, leaf.ref
    if kind in STRING_KINDS or kind in CASED_KINDS:
        return string_matcher(kind, ref, leaf.values)
    if kind == "re":
        regexes: list[SafeRegex] = leaf.values

        def match_re(view: EventView) -> bool:
            for x in view.strs(ref):
                for rx in regexes:
                    if rx.search(x):
                        return True
            return False

        return match_re
    if kind == "num":
        numbers = frozenset(float(n) for n in leaf.values)

        def match_num(view: EventView) -> bool:
            for value in elements(view.raw(ref)):
                n = as_number(value)
                if n is not None and n in numbers:
                    return True
            return False

        return match_num
    if kind == "bool":
        expected: bool = leaf.arg
        text = "true" if expected else "false"

        def match_bool(view: EventView) -> bool:
            for value in elements(view.raw(ref)):
                if value is expected or (isinstance(value, str) and value.strip().lower() == text):
                    return True
            return False

        return match_bool
    if kind == "cmp":
        op, bound = leaf.arg
        compare = COMPARE[op]

        def match_cmp(view: EventView) -> bool:
            for value in elements(view.raw(ref)):
                n = as_number(value)
                if n is not None and not math.isnan(n) and compare(n, bound):
                    return True
            return False

        return match_cmp
    if kind == "cidr":
        networks = leaf.values

        def match_cidr(view: EventView) -> bool:
            for x in view.strs(ref):
                try:
                    ip = ipaddress.ip_address(x.strip().strip("[]"))
                except ValueError:
                    continue
                for net in networks:
                    if ip.version == net.version and ip in net:
                        return True
            return False

        return match_cidr
    if kind == "exists":
        want: bool = leaf.arg

        def match_exists(view: EventView) -> bool:
            return (view.raw(ref) is not MISSING) is want

        return match_exists
    if kind == "null":

        def match_null(view: EventView) -> bool:
            value = view.raw(ref)
            return value is MISSING or value is None or value == ""

        return match_null
    if kind == "fieldref":
        other, starts, ends, cased = leaf.arg

        def match_fieldref(view: EventView) -> bool:
            mine = view.strs(ref) if cased else view.low(ref)
            theirs = view.strs(other) if cased else view.low(other)
            for a in mine:
                for b in theirs:
                    if starts and ends:
                        if b in a:
                            return True
                    elif starts:
                        if a.startswith(b):
                            return True
                    elif ends:
                        if a.endswith(b):
                            return True
                    elif a == b:
                        return True
            return False

        return match_fieldref
    if kind == "tspart":
        part, number = leaf.arg
        extract = TIME_PARTS[part]

        def match_tspart(view: EventView) -> bool:
            for value in elements(view.raw(ref)):
                moment = _timestamp(value)
                if moment is not None and extract(moment) == number:
                    return True
            return False

        return match_tspart
    if kind == "never":
        return lambda view: False
    raise ValueError(f"unknown leaf kind {kind!r}")
