"""Read one event's fields for a group of rules and find the rules' literals in them.

For each event, every field the group's rules need a literal in is fetched once (a raw
record's ``data.attrs`` mapping is fetched once for all of its fields), lower-cased once
and scanned with the Aho-Corasick automaton of the literals that rules need *in that
field*. The other fields are read only if a rule that gets evaluated asks for them
(``EventView`` fills itself lazily).

A rule's number (``EventID: 4688``) is not text to look for: the value is parsed as the
``num`` leaf parses it (``as_number``: "0x1250", "4.688e3" and "4_688" are 4688 too) and
looked up in the field's numbers.

The scan result of a field value is memoised from the value's second sighting on:
image paths, users and companies repeat across events, command lines mostly do not.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import ahocorasick

from agentwatch.detect.fieldmap import MISSING, FieldRef
from agentwatch.detect.sigma.leaves import NUMBER_KEY, as_number, elements
from agentwatch.detect.sigma.view import EventView, str_forms
from agentwatch.events.model import Event

MEMO_SIZE = 20_000  # distinct field values whose scan result is remembered per group (all fields)
MEMO_VALUE_LEN = 1024  # longer values are scanned every time (bounds the memo to ~20 MB)
_EMPTY: frozenset = frozenset()
_second = itemgetter(1)
_PLAIN = (int, float, bool)

Found = tuple[tuple[str], frozenset[int]]  # ((lower-cased value,), literal ids found in it)


class _Field:
    """One scanned field of the group: its automaton, its numbers and its memo of scanned values."""

    __slots__ = ("ref", "automaton", "numbers", "memo", "once")

    def __init__(self, ref: FieldRef, literals: dict[str, int], numbers: dict[str, int]) -> None:
        self.ref = ref
        self.automaton: Any = None
        if literals:
            self.automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            for text, ident in literals.items():
                self.automaton.add_word(text, ident)
            self.automaton.make_automaton()
        # number -> literal id; the texts are repr(float) (compiler)
        self.numbers: dict[float, int] | None = {float(t): i for t, i in numbers.items()} if numbers else None
        self.memo: dict[str, Found] = {}
        self.once: set[str] = set()


class FieldScanner:
    """Reads and scans fields of events; ``literals`` maps a field key to {text: literal id}
    (and the field key + ``NUMBER_KEY`` to {repr(float): literal id})."""

    def __init__(self, refs: list[FieldRef], literals: dict[str, dict[str, int]]) -> None:
        self.fields = [
            _Field(ref, literals.get(ref.key, {}), literals.get(ref.key + NUMBER_KEY, {}))
            for ref in refs
            if literals.get(ref.key) or literals.get(ref.key + NUMBER_KEY)
        ]
        self.memo_size = 0
        self.once_size = 0
        # (key, record field, getter, memo, field)
        self._plan = [(f.ref.key, f.ref.attr, f.ref.get, f.memo, f) for f in self.fields]

    def read(self, event: Event) -> tuple[EventView, set[int]]:
        """The event's view (its fields read and lower-cased) and the ids of the literals found."""
        raws: dict[str, Any] = {}
        lows: dict[str, tuple[str, ...]] = {}
        hits: set[int] = set()
        attrs = event.body.get("data")
        attrs = attrs.get("attrs") if type(attrs) is dict else None
        if type(attrs) is not dict:
            attrs = None
        for key, attr, get, memo, field in self._plan:
            if attr is not None and attrs is not None:
                value = attrs.get(attr, MISSING)
                if value is MISSING:  # not in the record: the ref's own getter (canonical path)
                    value = get(event)
            else:
                value = get(event)
            raws[key] = value
            if type(value) is str:
                found = memo.get(value)
                if found is None:
                    found = self._scan(field, value)
                lows[key] = found[0]
                if found[1]:
                    hits |= found[1]
            elif value is MISSING:  # most fields of most events: no string forms, nothing found
                lows[key] = ()
            else:
                lows[key] = self._other(field, value, hits)
        return EventView(event, raws, lows), hits

    def _other(self, field: _Field, value: Any, hits: set[int]) -> tuple[str, ...]:
        """Lower-cased string forms of a value that is not a string (list, number, missing ...)."""
        out: list[str] = []
        for text in str_forms(value):
            found = field.memo.get(text) or self._scan(field, text)
            out.append(found[0][0])
            hits |= found[1]
        numbers = field.numbers
        if numbers is not None and type(value) not in _PLAIN:
            # a plain number's string form parses to the same number (repr of a float round-trips);
            # anything else is read as the num leaf reads it (str_forms caps and flattens lists)
            for element in elements(value):
                ident = numbers.get(as_number(element))  # type: ignore[arg-type]
                if ident is not None:
                    hits.add(ident)
        return tuple(out)

    def _scan(self, field: _Field, value: str) -> Found:
        low = value.lower()
        automaton = field.automaton
        ids = frozenset(map(_second, automaton.iter(low))) if automaton is not None else _EMPTY  # (end, id) pairs
        numbers = field.numbers
        if numbers is not None:
            ident = numbers.get(as_number(value))  # type: ignore[arg-type]
            if ident is not None:
                ids = ids | {ident}
        found = ((low,), ids or _EMPTY)
        if len(value) <= MEMO_VALUE_LEN:
            # remember a value from its second sighting on: unique values (command lines,
            # logon ids) would otherwise flush the repeating ones out of the memo
            if value in field.once:
                if self.memo_size >= MEMO_SIZE:
                    for f in self.fields:
                        f.memo.clear()
                    self.memo_size = 0
                field.memo[value] = found
                self.memo_size += 1
            else:
                if self.once_size >= MEMO_SIZE:
                    for f in self.fields:
                        f.once.clear()
                    self.once_size = 0
                field.once.add(value)
                self.once_size += 1
        return found
