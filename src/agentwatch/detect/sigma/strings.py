"""String leaves: one field compared with a list of Sigma strings of one kind.

Kinds on lower-cased values (Sigma's default is case-insensitive): ``eq``, ``prefix``,
``suffix``, ``contains``, ``glob`` ('*' wildcards only) and ``wild`` (inner ``*``/``?``
wildcards, a linear-time RE2 full match). The same kinds prefixed with ``c`` (``ceq``
...) compare the values as they are (the ``cased`` modifier).

A merged list of values is one C-level call where possible: a set lookup for ``eq``,
one ``str.endswith(tuple)`` for ``suffix``, one Aho-Corasick scan for a long
``contains`` list. The most frequent leaves (case-insensitive ``eq``, ``prefix``,
``suffix`` and short ``contains`` lists) read the event view's ``lows`` directly in
one closure: they run for every candidate rule of every event.
"""

from __future__ import annotations

from collections.abc import Callable

import ahocorasick
import re2

from agentwatch.detect.fieldmap.pipelines import FieldRef
from agentwatch.detect.sigma.view import EventView

Matcher = Callable[[EventView], bool]

STRING_KINDS = frozenset({"eq", "prefix", "suffix", "contains", "glob", "wild"})
CASED_KINDS = frozenset("c" + k for k in STRING_KINDS)
AHO_THRESHOLD = 6

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.dot_nl = True


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


def string_matcher(kind: str, ref: FieldRef, values: list) -> Matcher:
    """The closure of a string leaf of ``kind`` on ``ref`` (any of ``values`` matches)."""
    cased = kind in CASED_KINDS
    base = kind[1:] if cased else kind
    if not cased and base not in ("wild", "glob"):
        values = [v.lower() for v in values]
    values = list(dict.fromkeys(values))
    if not cased:
        inline = _lower_matcher(base, ref, values)
        if inline is not None:
            return inline
    return _any_form(ref, cased, _test(base, cased, values))


def _lower_matcher(base: str, ref: FieldRef, values: list[str]) -> Matcher | None:
    """One closure for the frequent case-insensitive kinds, or None for the others."""
    key = ref.key
    if base == "eq" and len(values) == 1:
        only = values[0]

        def match_eq(view: EventView) -> bool:
            forms = view.lows.get(key)
            if forms is None:
                forms = view.low(ref)
            return only in forms

        return match_eq
    if base == "eq":
        choices = frozenset(values)

        def match_eq_any(view: EventView) -> bool:
            forms = view.lows.get(key)
            if forms is None:
                forms = view.low(ref)
            return not choices.isdisjoint(forms)

        return match_eq_any
    tup = tuple(values)
    if base in ("prefix", "suffix"):
        ends = str.startswith if base == "prefix" else str.endswith  # as fast as the bound method

        def match_end(view: EventView) -> bool:
            forms = view.lows.get(key)
            if forms is None:
                forms = view.low(ref)
            for x in forms:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if ends(x, tup):
                    return True
            return False

        return match_end
    if base == "contains" and len(values) == 1:
        only = values[0]

        def match_contains(view: EventView) -> bool:
            forms = view.lows.get(key)
            if forms is None:
                forms = view.low(ref)
            for x in forms:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if only in x:
                    return True
            return False

        return match_contains
    if base == "contains" and len(values) < AHO_THRESHOLD:

        def match_contains_any(view: EventView) -> bool:
            forms = view.lows.get(key)
            if forms is None:
                forms = view.low(ref)
            for x in forms:
                for lit in tup:
                    if lit in x:
                        return True
            return False

        return match_contains_any
    return None


def _any_form(ref: FieldRef, cased: bool, test: Callable[[str], bool]) -> Matcher:
    """True when ``test`` holds for one of the field's string forms (lower-cased unless ``cased``)."""
    if cased:

        def match_cased(view: EventView) -> bool:
            for x in view.strs(ref):  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if test(x):
                    return True
            return False

        return match_cased
    key = ref.key

    def match(view: EventView) -> bool:
        forms = view.lows.get(key)
        if forms is None:
            forms = view.low(ref)
        for x in forms:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
            if test(x):
                return True
        return False

    return match


def _test(base: str, cased: bool, values: list) -> Callable[[str], bool]:
    """The test of one string form against every value of the leaf."""
    if base == "eq":
        if len(values) == 1:
            return values[0].__eq__
        return frozenset(values).__contains__
    if base == "prefix":
        tup = tuple(values)
        return lambda x: x.startswith(tup)
    if base == "suffix":
        tup = tuple(values)
        return lambda x: x.endswith(tup)
    if base == "contains":
        return _contains_test(values)
    if base == "glob":  # values are fragment tuples of a '*'-only pattern: "a*b*c" -> ("a", "b", "c")
        globs = [g if cased else tuple(f.lower() for f in g) for g in values]

        def test(x: str) -> bool:
            for glob in globs:  # noqa: SIM110 - explicit loop is faster on the hot path
                if glob_match(x, glob):
                    return True
            return False

        return test
    # wild: values are already regex source (escaped literals, .* and .)
    fullmatch = re2.compile("(?:" + "|".join(values) + ")", _RE2_OPTIONS).fullmatch
    return lambda x: fullmatch(x) is not None


def _contains_test(values: list[str]) -> Callable[[str], bool]:
    if len(values) == 1:
        only = values[0]
        return lambda x: only in x
    if len(values) < AHO_THRESHOLD:
        tup = tuple(values)

        def test(x: str) -> bool:
            for lit in tup:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if lit in x:
                    return True
            return False

        return test
    if all(len(lit) == 1 for lit in values):
        chars = frozenset(values)  # e.g. a list of emoji: one C-level set scan
        return lambda x: not chars.isdisjoint(x)
    if all(lit.isascii() for lit in values):
        automaton = ahocorasick.Automaton()
        for lit in values:
            automaton.add_word(lit, lit)
        automaton.make_automaton()
        it = automaton.iter

        def test_aho(x: str) -> bool:
            for _ in it(x):
                return True
            return False

        return test_aho
    # wide alphabets (emoji, homoglyphs): index the literals by their first character
    by_first: dict[str, tuple[str, ...]] = {}
    for lit in values:
        key = anchor_char(lit)
        by_first[key] = (*by_first.get(key, ()), lit)
    firsts = frozenset(by_first)

    def test_wide(x: str) -> bool:
        if firsts.isdisjoint(x):
            return False
        for ch in firsts.intersection(x):
            for lit in by_first[ch]:
                if lit in x:
                    return True
        return False

    return test_wide
