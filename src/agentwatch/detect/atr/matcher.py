"""Matching agent-threat rules against views, many patterns at a time.

Every RE2-expressible pattern of every rule is added to a per-field ``re2.Filter``
(FilteredRE2): the literal atoms each pattern needs are searched for all patterns
at once, and only the patterns whose atoms occur are run, each in linear time.
Patterns RE2 cannot express are searched one by one with a time limit. A rule
then fires when any (or all, per its ``condition``) of its conditions hit. A
condition whose pattern does not compile never hits (the reference engine does
the same) and is listed in ``skipped``.

What a text hits under one field name depends on nothing else, and agents send the same
texts over and over (the system prompt and the tool descriptions with every LLM call, the
same command lines): the matcher remembers the hits of the last texts it matched
(:data:`SEEN_TEXTS`), and a text seen again costs a dictionary lookup instead of the filter,
the slow patterns and the other conditions. The matching time charged to rules (``costs``)
is that of first sightings.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import re2

from agentwatch.detect.atr.regexes import Compiled, compile_pattern, fallback_for, options
from agentwatch.detect.atr.rules import AtrRule, Condition
from agentwatch.detect.atr.views import View, candidate_fields, normalize

# Texts whose hits are remembered, per matcher; past it the memory starts afresh. A text over
# INLINE_KEY_CHARS is remembered by a 128-bit BLAKE2b digest of it, so the memory never holds
# long texts: at most SEEN_TEXTS keys of up to INLINE_KEY_CHARS characters. 0: remember nothing.
SEEN_TEXTS = 4096
INLINE_KEY_CHARS = 1024


@functools.lru_cache(maxsize=64)
def _digest(text: str) -> bytes:
    """A long text's digest, hashed once for both matchers (the bundled set and the pack see the
    same views) and for the same text in the next events (a system prompt sent with every call).
    Holds at most 64 texts, each cut by the views to 64 K characters."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _text_key(name: str, text: str) -> tuple[str, str | bytes]:
    return (name, text) if len(text) <= INLINE_KEY_CHARS else (name, _digest(text))


@dataclass(frozen=True)
class _Slot:
    rule: int
    cond: int


@dataclass
class _FieldIndex:
    filter: re2.Filter | None = None
    slots: list[_Slot] = field(default_factory=list)
    confirm: dict[int, Compiled] = field(default_factory=dict)
    nanos: int = 0  # time in the shared filter, charged to its patterns evenly by costs()
    slow: list[tuple[_Slot, Compiled]] = field(default_factory=list)
    other: list[tuple[_Slot, Condition]] = field(default_factory=list)


def _other_hit(cond: Condition, normalized: str, raw: str) -> bool:
    op, value = cond.operator, cond.value
    if op == "contains":
        v = value.lower()
        return v in normalized.lower() or v in raw.lower()
    if op == "exact":
        return normalized == value or raw == value
    if op == "starts_with":
        v = value.lower()
        return normalized.lower().startswith(v) or raw.lower().startswith(v)
    try:
        x, y = float(normalized), float(value)
    except ValueError:
        return False
    return {"gt": x > y, "lt": x < y, "gte": x >= y, "lte": x <= y, "eq": x == y}[op]


class AtrMatcher:
    """A compiled, immutable set of rules; ``match`` is safe to call from any thread."""

    def __init__(self, rules: Iterable[AtrRule]) -> None:
        self.rules = [r for r in rules if r.active]
        self.skipped: list[tuple[str, int, str]] = []
        self.nanos = [0] * len(self.rules)  # matching time charged to each rule
        pending: dict[str, list[tuple[_Slot, Compiled]]] = defaultdict(list)
        self.fields: dict[str, _FieldIndex] = defaultdict(_FieldIndex)
        for ri, rule in enumerate(self.rules):
            for ci, cond in enumerate(rule.conditions):
                slot = _Slot(ri, ci)
                if cond.operator != "regex":
                    self.fields[cond.field].other.append((slot, cond))
                    continue
                try:
                    compiled = compile_pattern(cond.value, validate=False)
                except ValueError as exc:
                    self.skipped.append((rule.id, ci, str(exc)))
                    continue
                if compiled.re2_pattern is not None or compiled.pre_pattern is not None:
                    pending[cond.field].append((slot, compiled))
                else:
                    self.fields[cond.field].slow.append((slot, compiled))
        for name, items in pending.items():
            flt = re2.Filter()
            added: list[tuple[_Slot, Compiled]] = []
            for slot, compiled in items:
                # RE2 holds the GIL while it parses; let waiting threads (request handlers, the
                # pipeline) run between patterns so a background build does not stall the server
                time.sleep(0)
                try:
                    flt.Add(compiled.re2_pattern or compiled.pre_pattern, options())
                except re2.error as exc:  # RE2 refused the translation (e.g. a repetition over 1000)
                    try:
                        slow = fallback_for(compiled.source, str(exc))
                    except ValueError as bad:
                        rule = self.rules[slot.rule]
                        self.skipped.append((rule.id, slot.cond, str(bad)))
                        continue
                    self.fields[name].slow.append((slot, slow))
                    continue
                added.append((slot, compiled))
            items = added
            flt.Compile()
            self.fields[name].filter = flt
            self.fields[name].slots = [slot for slot, _ in items]
            # a hit of a prefilter (superset of a slow pattern) only says "run the slow pattern"
            self.fields[name].confirm = {k: c for k, (_s, c) in enumerate(items) if c.re2_pattern is None}
        self.fields = dict(self.fields)
        self._field_names = frozenset(self.fields)
        self._names: dict[str, frozenset[str]] = {}
        # (field name, text or its digest) -> the slots that text hits under that name. Plain
        # dict operations, each atomic: matching threads share it without a lock.
        self._seen: dict[tuple[str, str | bytes], tuple[_Slot, ...]] = {}

    def _hits(self, view: View, hits: dict[int, set[int]]) -> None:
        names = self._names.get(view.kind)
        if names is None:
            names = self._names[view.kind] = candidate_fields(view.kind)
        seen = self._seen
        for name in (names | view.fields.keys()) & self._field_names:
            raw = view.resolve(name)
            if raw is None:
                continue
            if not SEEN_TEXTS:  # remembering nothing (bench/atr compares matching itself)
                found = self._text_hits(self.fields[name], raw)
            else:
                key = _text_key(name, raw)
                found = seen.get(key)
                if found is None:
                    found = self._text_hits(self.fields[name], raw)
                    if len(seen) >= SEEN_TEXTS:
                        seen.clear()
                    seen[key] = found
            for slot in found:
                hits[slot.rule].add(slot.cond)

    def _text_hits(self, index: _FieldIndex, raw: str) -> tuple[_Slot, ...]:
        """The conditions of one field that ``raw`` hits."""
        out: list[_Slot] = []
        norm = normalize(raw)
        texts = (norm,) if norm == raw else (norm, raw)
        if index.filter is not None:
            started = time.perf_counter_ns()
            found: set[int] = set()
            for text in texts:
                found.update(index.filter.Match(text) or ())
            index.nanos += time.perf_counter_ns() - started
            for k in sorted(found):
                slot = index.slots[k]
                slow = index.confirm.get(k)
                if slow is not None:
                    started = time.perf_counter_ns()
                    ok = any(slow.search(text) for text in texts)
                    self.nanos[slot.rule] += time.perf_counter_ns() - started
                    if not ok:
                        continue
                out.append(slot)
        for slot, compiled in index.slow:
            started = time.perf_counter_ns()
            if any(compiled.search(text) for text in texts):
                out.append(slot)
            self.nanos[slot.rule] += time.perf_counter_ns() - started
        for slot, cond in index.other:
            if _other_hit(cond, norm, raw):
                out.append(slot)
        return tuple(out)

    def match_views(self, views: Iterable[View]) -> list[AtrRule]:
        """Rules that fire on any of ``views``, in rule order (deterministic)."""
        fired: set[int] = set()
        for view in views:
            hits: dict[int, set[int]] = defaultdict(set)
            self._hits(view, hits)
            for ri, conds in hits.items():
                rule = self.rules[ri]
                if rule.logic == "all" and len(conds) < len(rule.conditions):
                    continue
                fired.add(ri)
        return [self.rules[i] for i in sorted(fired)]

    def costs(self) -> dict[str, dict[str, float]]:
        """Seconds of matching charged to each rule (shared filter time split over its patterns)."""
        nanos = [float(n) for n in self.nanos]
        for index in self.fields.values():
            if index.slots and index.nanos:
                share = index.nanos / len(index.slots)
                for slot in index.slots:
                    nanos[slot.rule] += share
        return {r.id: {"seconds": nanos[i] / 1e9} for i, r in enumerate(self.rules) if nanos[i]}
