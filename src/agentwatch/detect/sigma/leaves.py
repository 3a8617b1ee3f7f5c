"""Leaf matchers: one field compared with one kind of Sigma value.

A leaf is data (``kind``, ``ref``, ``values``) until :func:`leaf_function` turns it
into a closure over an :class:`EventView`. Leaves of the same kind on the same field
that are OR-linked (``CommandLine|contains: [a, b, c]``) are merged into one leaf, so
a list of suffixes is one ``str.endswith(tuple)`` call, a list of exact values one
set lookup, and a long list of substrings one Aho-Corasick scan.

String kinds on lower-cased values (Sigma's default is case-insensitive):
``eq``, ``prefix``, ``suffix``, ``contains``, ``wild`` (inner ``*``/``?`` wildcards, a
linear-time RE2 full match). The same kinds prefixed with ``c`` (``ceq`` ...) compare
the values as they are (the ``cased`` modifier).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ahocorasick
import re2

from agentwatch.detect.fieldmap.accessors import MISSING
from agentwatch.detect.fieldmap.pipelines import FieldRef
from agentwatch.detect.safe_regex import SafeRegex
from agentwatch.detect.sigma.view import EventView

Matcher = Callable[[EventView], bool]

STRING_KINDS = frozenset({"eq", "prefix", "suffix", "contains", "glob", "wild"})
CASED_KINDS = frozenset("c" + k for k in STRING_KINDS)
MERGEABLE = STRING_KINDS | CASED_KINDS | {"num"}
AHO_THRESHOLD = 6

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.dot_nl = True


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


def anchor_char(literal: str) -> str:
    """The character to index a literal by: its first non-ASCII one (rarer), else its first."""
    for ch in literal:
        if not ch.isascii():
            return ch
    return literal[0]


def glob_match(x: str, glob: tuple[str, ...]) -> bool:
    """Match a '*'-only wildcard pattern split at its stars; greedy leftmost search is exact here."""
    first, last = glob[0], glob[-1]
    if not x.startswith(first) or not x.endswith(last):
        return False
    pos, end = len(first), len(x) - len(last)
    if end < pos:
        return False
    for fragment in glob[1:-1]:
        if fragment:
            i = x.find(fragment, pos, end)
            if i < 0:
                return False
            pos = i + len(fragment)
    return True


def _any_low(ref: FieldRef, test: Callable[[str], bool]) -> Matcher:
    def match(view: EventView) -> bool:
        for x in view.low(ref):  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
            if test(x):
                return True
        return False

    return match


def _string_matcher(kind: str, ref: FieldRef, values: list[str]) -> Matcher:
    cased = kind in CASED_KINDS
    base = kind[1:] if cased else kind
    if not cased and base not in ("wild", "glob"):
        values = [v.lower() for v in values]
    values = list(dict.fromkeys(values))

    if base == "eq":
        if len(values) == 1:
            only = values[0]
            test: Callable[[str], bool] = only.__eq__
        else:
            test = frozenset(values).__contains__
    elif base == "prefix":
        tup = tuple(values)

        def test(x: str) -> bool:
            return x.startswith(tup)

    elif base == "suffix":
        tup = tuple(values)

        def test(x: str) -> bool:
            return x.endswith(tup)

    elif base == "contains":
        if len(values) == 1:
            only = values[0]

            def test(x: str) -> bool:
                return only in x

        elif len(values) < AHO_THRESHOLD:
            tup = tuple(values)

            def test(x: str) -> bool:
                for lit in tup:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                    if lit in x:
                        return True
                return False

        elif all(len(lit) == 1 for lit in values):
            chars = frozenset(values)  # e.g. a list of emoji: one C-level set scan

            def test(x: str) -> bool:
                return not chars.isdisjoint(x)

        elif all(lit.isascii() for lit in values):
            automaton = ahocorasick.Automaton()
            for lit in values:
                automaton.add_word(lit, lit)
            automaton.make_automaton()
            it = automaton.iter

            def test(x: str) -> bool:
                for _ in it(x):
                    return True
                return False

        else:  # wide alphabets (emoji, homoglyphs): index the literals by their first character
            by_first: dict[str, tuple[str, ...]] = {}
            for lit in values:
                key = anchor_char(lit)
                by_first[key] = (*by_first.get(key, ()), lit)
            firsts = frozenset(by_first)

            def test(x: str) -> bool:
                if firsts.isdisjoint(x):
                    return False
                for ch in firsts.intersection(x):
                    for lit in by_first[ch]:
                        if lit in x:
                            return True
                return False

    elif base == "glob":  # values are fragment tuples of a '*'-only pattern: "a*b*c" -> ("a", "b", "c")
        globs = [g if cased else tuple(f.lower() for f in g) for g in values]

        def test(x: str) -> bool:
            for glob in globs:  # noqa: SIM110 - explicit loop is faster on the hot path
                if glob_match(x, glob):
                    return True
            return False

    else:  # wild: values are already regex source (escaped literals, .* and .)
        pattern = re2.compile("(?:" + "|".join(values) + ")", _RE2_OPTIONS)
        fullmatch = pattern.fullmatch

        def test(x: str) -> bool:
            return fullmatch(x) is not None

    if cased:

        def match(view: EventView) -> bool:
            for x in view.strs(ref):  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if test(x):
                    return True
            return False

        return match
    return _any_low(ref, test)


def _as_number(value: Any) -> float | None:
    if type(value) is bool:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            if text[:2].lower() == "0x":
                try:
                    return float(int(text, 16))
                except ValueError:
                    return None
    return None


def _elements(value: Any) -> list[Any]:
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
        return _string_matcher(kind, ref, leaf.values)
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
            for value in _elements(view.raw(ref)):
                n = _as_number(value)
                if n is not None and n in numbers:
                    return True
            return False

        return match_num
    if kind == "bool":
        expected: bool = leaf.arg
        text = "true" if expected else "false"

        def match_bool(view: EventView) -> bool:
            for value in _elements(view.raw(ref)):
                if value is expected or (isinstance(value, str) and value.strip().lower() == text):
                    return True
            return False

        return match_bool
    if kind == "cmp":
        op, bound = leaf.arg
        compare = COMPARE[op]

        def match_cmp(view: EventView) -> bool:
            for value in _elements(view.raw(ref)):
                n = _as_number(value)
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
            for value in _elements(view.raw(ref)):
                moment = _timestamp(value)
                if moment is not None and extract(moment) == number:
                    return True
            return False

        return match_tspart
    if kind == "never":
        return lambda view: False
    raise ValueError(f"unknown leaf kind {kind!r}")
