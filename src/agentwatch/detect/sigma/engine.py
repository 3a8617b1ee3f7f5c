"""The Sigma matcher: rules indexed by logsource, an Aho-Corasick prefilter, cost counters.

For each event:

1. its logsource keys select the rule buckets that apply (``fieldmap.taxonomy``);
2. the values of every field those rules read are lower-cased once and scanned once
   with one Aho-Corasick automaton holding every rule's necessary literals;
3. a rule is evaluated only when each of its literal clauses was hit (rules without
   any necessary literal, e.g. a lone regex or a ``NOT``, are always evaluated);
4. the rule's compiled closure decides; time and evaluations are counted per rule.

The per-bucket-combination automaton is built lazily and cached, so Windows process
events and agent tool calls each get a small automaton of their own.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import product as cartesian

import ahocorasick

from agentwatch.detect.fieldmap import DEFAULT, FieldMap, FieldRef
from agentwatch.detect.fieldmap.taxonomy import LogsourceKey
from agentwatch.detect.sigma.compiler import Compiled, CompileError, best_clauses, leaf_literals, necessary
from agentwatch.detect.sigma.correlation import CorrelationEngine
from agentwatch.detect.sigma.loader import SigmaRule
from agentwatch.detect.sigma.rules import compile_rule
from agentwatch.detect.sigma.view import EventView
from agentwatch.events.model import Event

MEMO_SIZE = 20_000  # distinct field values whose scan result is remembered per logsource group
MEMO_VALUE_LEN = 1024  # longer values are scanned every time (bounds the memo to ~20 MB)
_EMPTY: frozenset = frozenset()


@dataclass
class _Entry:
    index: int
    rule: SigmaRule
    compiled: Compiled
    trigger: frozenset[int] = frozenset()
    rest: tuple[frozenset[int], ...] = ()
    chars: frozenset[str] = frozenset()  # single characters, one of which must occur (emoji, homoglyphs)
    enabled: bool = True
    match: object = None
    evaluations: int = 0
    matches: int = 0
    seconds: float = 0.0


@dataclass
class _Group:
    """What one combination of logsource buckets needs: fields, automaton, triggers."""

    refs: list[FieldRef]
    automaton: object | None
    by_literal: dict[int, list[_Entry]]
    always: list[_Entry]
    charset: frozenset[str] = frozenset()
    char_rules: list[_Entry] = field(default_factory=list)
    memo: dict[str, tuple[frozenset, frozenset]] = field(default_factory=dict)
    once: set[str] = field(default_factory=set)


@dataclass
class Problem:
    rule_id: str
    title: str
    reason: str


@dataclass
class SigmaEngine:
    """Stateless Sigma matching plus correlation state (see ``correlation.py``)."""

    rules: list[SigmaRule]
    fieldmap: FieldMap | None = None
    profile: bool = True
    max_lateness: float = 300.0  # seconds an event may arrive behind the newest one (correlations)
    max_groups: int = 10_000  # correlation groups kept per correlation rule
    max_events: int = 1_000  # events kept per correlation group
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        fm = self.fieldmap or DEFAULT
        self._fm = fm
        filters = [r for r in self.rules if r.kind == "filter"]
        detections = [r for r in self.rules if r.kind == "detection"]
        correlations = [r for r in self.rules if r.kind == "correlation"]
        self._literal_ids: dict[str, int] = {}
        self._buckets: dict[LogsourceKey, list[_Entry]] = {}
        self._entries: dict[str, _Entry] = {}
        self._disabled: set[str] = set()
        self._groups: dict[tuple, _Group] = {}
        compiled_rules: list[tuple[SigmaRule, Compiled]] = []
        popularity: Counter[str] = Counter()
        for rule in detections:
            applicable = [f for f in filters if _filter_applies(f, rule)]
            try:
                compiled = compile_rule(rule, fm, applicable)
            except CompileError as exc:
                self.problems.append(Problem(rule.id, rule.title, str(exc)))
                continue
            compiled_rules.append((rule, compiled))
            popularity.update(set(leaf_literals(compiled.node)))

        popularity = _containment(popularity)

        def rank(clause: frozenset[str]) -> tuple[int, int, int]:
            # a literal many rules use ("\\windows\\", ".exe") is likely common in events too
            shortest = min((len(lit) for lit in clause), default=0)
            return (sum(popularity[lit] for lit in clause), -min(shortest, 12), len(clause))

        for rule, compiled in compiled_rules:
            ranked = best_clauses(necessary(compiled.node, rank), rank) if compiled.clauses else []
            entry = _Entry(len(self._entries), rule, compiled, match=compiled.match)
            clauses = [frozenset(self._literal_id(lit) for lit in clause) for clause in ranked]
            if clauses:
                entry.trigger, entry.rest = clauses[0], tuple(clauses[1:])
            elif compiled.char_clause:
                entry.chars = compiled.char_clause
            self._entries[rule.id] = entry
            ls = rule.logsource
            self._buckets.setdefault((ls.get("product"), ls.get("category"), ls.get("service")), []).append(entry)
        self.correlations = CorrelationEngine(
            correlations,
            [e.rule for e in self._entries.values()],
            fm,
            max_groups=self.max_groups,
            max_events=self.max_events,
            max_lateness=self.max_lateness,
        )
        self.problems.extend(Problem(*p) for p in self.correlations.problems)

    # -- public API ---------------------------------------------------------------
    def match(self, event: Event) -> list[SigmaRule]:
        """Detection rules (enabled, compiled) that match ``event``."""
        keys = self._fm.event_keys(event)
        if not keys:
            return []
        group = self._group(tuple(keys))
        if group is None:
            return []
        view = EventView(event)
        candidates: list[_Entry] = list(group.always)
        hits, chars = self._scan(group, view)
        if chars:
            candidates.extend(e for e in group.char_rules if not e.chars.isdisjoint(chars))
        if hits:
            seen: set[int] = set()
            by_literal = group.by_literal
            for lit in hits:
                for entry in by_literal.get(lit, ()):
                    if entry.index in seen:
                        continue
                    seen.add(entry.index)
                    for clause in entry.rest:
                        if hits.isdisjoint(clause):
                            break
                    else:
                        candidates.append(entry)
        matched: list[SigmaRule] = []
        if self.profile:
            clock = time.perf_counter
            for entry in candidates:
                if not entry.enabled:
                    continue
                start = clock()
                ok = entry.match(view)
                entry.seconds += clock() - start
                entry.evaluations += 1
                if ok:
                    entry.matches += 1
                    matched.append(entry.rule)
        else:
            for entry in candidates:
                if entry.enabled:
                    entry.evaluations += 1
                    if entry.match(view):
                        entry.matches += 1
                        matched.append(entry.rule)
        return matched

    def observe(self, event: Event, matched: list[SigmaRule]) -> list[tuple[SigmaRule, list[Event]]]:
        """Feed the detection matches of ``event`` to the correlation rules; returns those that fire."""
        return self.correlations.observe(event, [r for r in matched if r.id not in self._disabled], self._disabled)

    def costs(self) -> dict[str, dict]:
        """Per-rule evaluations, matches and seconds spent (to find a slow rule)."""
        return {
            rule_id: {
                "title": e.rule.title,
                "evaluations": e.evaluations,
                "matches": e.matches,
                "seconds": e.seconds,
                "mean_us": (e.seconds / e.evaluations * 1e6) if e.evaluations else 0.0,
            }
            for rule_id, e in self._entries.items()
        }

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        if enabled:
            self._disabled.discard(rule_id)
        else:
            self._disabled.add(rule_id)
        entry = self._entries.get(rule_id)
        if entry is not None:
            entry.enabled = enabled

    def compiled_ids(self) -> set[str]:
        return set(self._entries)

    def regex_engines(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self._entries.values():
            for name, n in e.compiled.regex_engines.items():
                out[name] = out.get(name, 0) + n
        return out

    # -- internals ----------------------------------------------------------------
    def _scan(self, group: _Group, view: EventView) -> tuple[set[int], set[str]]:
        """Literal ids and rare characters present in the event's field values.

        Each distinct lower-cased value is scanned once and its result memoised (bounded):
        image paths, users, companies and parent processes repeat across events.
        """
        memo, once = group.memo, group.once
        automaton = group.automaton
        charset = group.charset
        hits: set[int] = set()
        chars: set[str] = set()
        for forms in view.prime(group.refs):
            for value in forms:
                found = memo.get(value)
                if found is None:
                    lits = frozenset(lit for _, lit in automaton.iter(value)) if automaton is not None else _EMPTY
                    rare = charset.intersection(value) if charset and not charset.isdisjoint(value) else _EMPTY
                    found = (lits, rare)
                    if len(value) <= MEMO_VALUE_LEN:
                        # remember a value from its second sighting on: unique values (command
                        # lines, GUIDs) would otherwise flush the repeating ones out of the memo
                        if value in once:
                            if len(memo) >= MEMO_SIZE:
                                memo.clear()
                            memo[value] = found
                        else:
                            if len(once) >= MEMO_SIZE:
                                once.clear()
                            once.add(value)
                if found[0]:
                    hits |= found[0]
                if found[1]:
                    chars |= found[1]
        return hits, chars

    def _literal_id(self, literal: str) -> int:
        ident = self._literal_ids.get(literal)
        if ident is None:
            ident = len(self._literal_ids)
            self._literal_ids[literal] = ident
        return ident

    def _group(self, keys: tuple[LogsourceKey, ...]) -> _Group | None:
        try:
            return self._groups[keys]
        except KeyError:
            pass
        entries: dict[int, _Entry] = {}
        for key in keys:
            for combo in cartesian(*((part, None) if part is not None else (None,) for part in key)):
                for entry in self._buckets.get(combo, ()):
                    entries[entry.index] = entry
        if not entries:
            self._groups[keys] = None  # type: ignore[assignment]
            return None
        refs: dict[str, FieldRef] = {}
        by_literal: dict[int, list[_Entry]] = {}
        always: list[_Entry] = []
        char_rules: list[_Entry] = []
        charset: set[str] = set()
        literals: set[int] = set()
        for entry in sorted(entries.values(), key=lambda e: e.index):
            refs.update(entry.compiled.refs)
            if entry.chars:
                char_rules.append(entry)
                charset |= entry.chars
            elif entry.trigger:
                for lit in entry.trigger:
                    by_literal.setdefault(lit, []).append(entry)
                literals |= entry.trigger
                for clause in entry.rest:
                    literals |= clause
            else:
                always.append(entry)
        automaton = None
        if literals:
            automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
            names = {v: k for k, v in self._literal_ids.items()}
            for lit in literals:
                automaton.add_word(names[lit], lit)
            automaton.make_automaton()
        group = _Group(list(refs.values()), automaton, by_literal, always, frozenset(charset), char_rules)
        self._groups[keys] = group
        return group


def _containment(counts: Counter[str]) -> Counter[str]:
    """How many rule literals contain each literal: "\\windows\\" sits inside hundreds of
    paths, so it is probably common in events too, even if few rules use it on its own."""
    automaton = ahocorasick.Automaton()
    for lit in counts:
        automaton.add_word(lit, lit)
    automaton.make_automaton()
    out: Counter[str] = Counter()
    for lit, n in counts.items():
        for inner in {found for _, found in automaton.iter(lit)}:
            out[inner] += n
    return out


def _filter_applies(flt: SigmaRule, rule: SigmaRule) -> bool:
    """A Sigma filter applies when its logsource covers the rule's and it names the rule (or ``any``)."""
    for key in ("product", "category", "service"):
        want = flt.logsource.get(key)
        if want is not None and rule.logsource.get(key) != want:
            return False
    targets = flt.parsed.filter.rules
    if isinstance(targets, str):
        return targets.lower() == "any"
    refs = {t.reference for t in targets}
    return bool(refs & {rule.id, rule.name, rule.title})


def iter_matches(engine: SigmaEngine, events: Iterable[Event]) -> Iterable[tuple[Event, list[SigmaRule]]]:
    for event in events:
        yield event, engine.match(event)
