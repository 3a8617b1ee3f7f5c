"""The Sigma matcher: rules indexed by logsource, an Aho-Corasick prefilter, cost counters.

For each event:

1. its logsource keys select the rule buckets that apply (``fieldmap.taxonomy``);
2. the values of every field those rules read are read and lower-cased once, and each
   is scanned once with the Aho-Corasick automaton of the literals rules need in that
   field (``scan.py``);
3. a rule is evaluated only when each of its literal clauses was hit (rules without
   any necessary literal, e.g. a lone regex or a ``NOT``, are always evaluated);
4. the rule's compiled closure decides; time and evaluations are counted per rule.

The per-bucket-combination scanner is built lazily and cached, so Windows process
events and agent tool calls each get small automata of their own.
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
from agentwatch.detect.sigma.compiler import (
    Compiled,
    CompileError,
    Literal,
    best_clauses,
    leaf_literals,
    necessary,
)
from agentwatch.detect.sigma.correlation import CorrelationEngine
from agentwatch.detect.sigma.loader import SigmaRule
from agentwatch.detect.sigma.rules import compile_rule
from agentwatch.detect.sigma.scan import FieldScanner
from agentwatch.events.model import Event


@dataclass(slots=True)
class _Entry:
    index: int
    rule: SigmaRule
    compiled: Compiled
    trigger: frozenset[int] = frozenset()
    rest: tuple[frozenset[int], ...] = ()
    enabled: bool = True
    match: object = None
    evaluations: int = 0
    matches: int = 0
    seconds: float = 0.0


@dataclass
class _Group:
    """What one combination of logsource buckets needs: the field scanner and the triggers."""

    scanner: FieldScanner
    by_literal: dict[int, dict[int, _Entry]]  # literal id -> the rules it triggers, by index
    always: list[_Entry]


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
    prefilter: bool = True  # False: every rule of the event's logsource is evaluated (to check the prefilter)
    max_lateness: float = 300.0  # seconds an event may arrive behind the newest one (correlations)
    max_groups: int = 10_000  # correlation groups kept per correlation rule
    max_events: int = 1_000  # events kept per correlation group
    max_items: int = 100_000  # events kept per correlation rule over all its groups
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        fm = self.fieldmap or DEFAULT
        self._fm = fm
        filters = [r for r in self.rules if r.kind == "filter"]
        detections = [r for r in self.rules if r.kind == "detection"]
        correlations = [r for r in self.rules if r.kind == "correlation"]
        self._literal_ids: dict[Literal, int] = {}
        self._buckets: dict[LogsourceKey, list[_Entry]] = {}
        self._entries: dict[str, _Entry] = {}
        self._disabled: set[str] = set()
        self._groups: dict[tuple, _Group] = {}
        compiled_rules: list[tuple[SigmaRule, Compiled]] = []
        popularity: Counter[Literal] = Counter()
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

        def rank(clause: frozenset[Literal]) -> tuple[int, int, int]:
            # a literal many rules use ("\\windows\\", ".exe") is likely common in events too
            shortest = min((len(text) for _, text in clause), default=0)
            return (sum(popularity[lit] for lit in clause), -min(shortest, 12), len(clause))

        for rule, compiled in compiled_rules:
            ranked = best_clauses(necessary(compiled.node, rank), rank) if compiled.clauses else []
            entry = _Entry(len(self._entries), rule, compiled, match=compiled.match)
            clauses = [frozenset(self._literal_id(lit) for lit in clause) for clause in ranked]
            if clauses:
                entry.trigger, entry.rest = clauses[0], tuple(clauses[1:])
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
            max_items=self.max_items,
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
        view, hits = group.scanner.read(event)
        candidates: list[_Entry] = list(group.always)
        if hits:
            triggered: dict[int, _Entry] = {}
            by_literal = group.by_literal
            for lit in hits:
                entries = by_literal.get(lit)
                if entries is not None:
                    triggered.update(entries)
            for entry in triggered.values():
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
    def _literal_id(self, literal: Literal) -> int:
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
        by_literal: dict[int, dict[int, _Entry]] = {}
        always: list[_Entry] = []
        literals: set[int] = set()
        for entry in sorted(entries.values(), key=lambda e: e.index):
            refs.update(entry.compiled.refs)
            if entry.trigger and self.prefilter:
                for lit in entry.trigger:
                    by_literal.setdefault(lit, {})[entry.index] = entry
                literals |= entry.trigger
                for clause in entry.rest:
                    literals |= clause
            else:
                always.append(entry)
        names = {v: k for k, v in self._literal_ids.items()}
        per_field: dict[str, dict[str, int]] = {}
        for ident in literals:
            key, text = names[ident]
            per_field.setdefault(key, {})[text] = ident
        group = _Group(FieldScanner(list(refs.values()), per_field), by_literal, always)
        self._groups[keys] = group
        return group


def _containment(counts: Counter[Literal]) -> Counter[Literal]:
    """How many rule literals of a field contain each literal: "\\windows\\" sits inside hundreds
    of paths, so it is probably common in events too, even if few rules use it on its own."""
    by_field: dict[str, list[str]] = {}
    for key, text in counts:
        by_field.setdefault(key, []).append(text)
    automata: dict[str, ahocorasick.Automaton] = {}
    for key, texts in by_field.items():
        automaton = ahocorasick.Automaton()
        for text in texts:
            automaton.add_word(text, text)
        automaton.make_automaton()
        automata[key] = automaton
    out: Counter[Literal] = Counter()
    for (key, text), n in counts.items():
        for inner in {found for _, found in automata[key].iter(text)}:
            out[(key, inner)] += n
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
