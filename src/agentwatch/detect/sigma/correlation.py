"""Sigma correlation rules evaluated in event time with bounded state.

Supported types: ``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``
(with ``group-by``, ``timespan``, field ``aliases``, the basic ``gt/gte/lt/lte/eq``
condition and, for temporal types, the extended boolean condition over rule names),
and correlations of correlations.

Time is the events' own ``ts``, never the wall clock, so a replay behaves like live
traffic. Events may arrive out of order: each group keeps its events sorted by time,
and an event is accepted as long as it is not older than the newest event seen minus
``timespan + max_lateness``. State is bounded: at most ``max_groups`` groups per
correlation (least recently used evicted), ``max_events`` events per group and ``max_items``
events per correlation over all its groups (least recently used groups evicted, counted in
``stats()[...]["evicted"]``). A window keeps what a finding needs of an event (id, time,
type, session, entities: ``slim``), never its payload.

Firing: conditions without an upper bound (``gt``/``gte``) fire as soon as some window
of ``timespan`` containing the new event satisfies them; the group's events are then
cleared so one burst gives one alert. Conditions with an upper bound (``lt``/``lte``/
``eq``) can only be decided when a window is complete: the window starting at the
group's oldest event is evaluated once the event-time watermark passes its end.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import yaml
from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from agentwatch.detect.builtin.base import slim
from agentwatch.detect.fieldmap import FieldMap, FieldRef, UnmappedField
from agentwatch.detect.fieldmap.accessors import MISSING
from agentwatch.detect.keys import bounded
from agentwatch.detect.sigma.loader import SigmaRule
from agentwatch.detect.sigma.rule_yaml import load_yaml
from agentwatch.detect.sigma.view import str_forms
from agentwatch.events.model import Event

MAX_GROUPS = 10_000
MAX_EVENTS = 1_000
MAX_ITEMS = 100_000  # events kept per correlation over all its groups (max_groups x max_events is 10 million)
MAX_LATENESS_S = 300.0

OPS = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}


@dataclass(order=True)
class _Item:
    ts: float
    seq: int
    member: int = field(compare=False)  # index of the referenced rule
    value: str | None = field(compare=False)
    event: Event = field(compare=False)


@dataclass
class _Corr:
    rule: SigmaRule
    kind: str
    members: list[str]  # referenced rule ids, in the listed order
    names: dict[str, int]  # reference text (id/name/title) -> member index
    group_refs: dict[str, list[FieldRef]]  # rule id -> refs for each group-by field
    value_refs: dict[str, FieldRef]  # rule id -> ref of the value_count field
    span: float
    conds: list[tuple[str, float]]
    extended: Any = None
    groups: OrderedDict = field(default_factory=OrderedDict)
    max_ts: float = float("-inf")
    closed_until: float = float("-inf")
    late_dropped: int = 0
    fired: int = 0
    size: int = 0  # items over all groups
    evicted: int = 0  # groups dropped to stay within max_groups / max_items

    @property
    def bounded_above(self) -> bool:
        return any(op in ("lt", "lte", "eq") for op, _ in self.conds)


class CorrelationEngine:
    """Holds every correlation rule and its per-group windows."""

    def __init__(
        self,
        correlations: list[SigmaRule],
        detections: list[SigmaRule],
        fieldmap: FieldMap,
        *,
        max_groups: int = MAX_GROUPS,
        max_events: int = MAX_EVENTS,
        max_lateness: float = MAX_LATENESS_S,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self.fieldmap = fieldmap
        self.max_groups = max_groups
        self.max_events = min(max_events, max_items)
        self.max_items = max_items
        self.max_lateness = max_lateness
        self.problems: list[tuple[str, str, str]] = []
        self._seq = 0
        by_ref: dict[str, SigmaRule] = {}
        for rule in [*detections, *correlations]:
            for key in (rule.id, rule.name, rule.title):
                if key:
                    by_ref.setdefault(key, rule)
        self._corrs: list[_Corr] = []
        self._by_member: dict[str, list[_Corr]] = {}
        for rule in _referenced_first(correlations, by_ref):
            try:
                corr = self._build(rule, by_ref)
            except ValueError as exc:
                self.problems.append((rule.id, rule.title, str(exc)))
                continue
            self._corrs.append(corr)
            for member in dict.fromkeys(corr.members):
                self._by_member.setdefault(member, []).append(corr)

    # -- building -----------------------------------------------------------------
    def _build(self, rule: SigmaRule, by_ref: dict[str, SigmaRule]) -> _Corr:
        parsed = rule.parsed
        kind = parsed.type.name.lower()
        if kind not in ("event_count", "value_count", "temporal", "temporal_ordered"):
            raise ValueError(f"correlation type {kind} is not supported")
        refs: list[SigmaRuleReference] = list(parsed.rules or [])
        extended = parsed.condition if isinstance(parsed.condition, SigmaExtendedCorrelationCondition) else None
        if not refs and extended is not None:
            refs = [SigmaRuleReference(name) for name in extended.get_referenced_rules()]
        members: list[str] = []
        names: dict[str, int] = {}
        targets: list[SigmaRule] = []
        for ref in refs:
            target = by_ref.get(ref.reference)
            if target is None:
                raise ValueError(f"referenced rule {ref.reference!r} is not loaded")
            names[ref.reference] = len(members)
            members.append(target.id)
            targets.append(target)
            if not parsed.generate and target.kind == "detection":
                target.alert = False
        aliases = parsed.aliases.aliases if parsed.aliases else {}
        group_by = list(parsed.group_by or [])
        group_refs: dict[str, list[FieldRef]] = {}
        value_refs: dict[str, FieldRef] = {}
        for target in targets:
            group_refs[target.id] = [self._field(_alias_for(aliases, alias, target), target) for alias in group_by]
        conds: list[tuple[str, float]] = []
        if isinstance(parsed.condition, SigmaCorrelationCondition):
            conds = _conditions(rule, parsed.condition)
            if kind == "value_count":
                fieldref = parsed.condition.fieldref
                name = fieldref[0] if isinstance(fieldref, list) else fieldref
                for target in targets:
                    value_refs[target.id] = self._field(name, target)
        if kind in ("temporal", "temporal_ordered") and extended is None and not _has_condition(rule):
            conds = [("gte", float(len(set(members))))]
        return _Corr(
            rule=rule,
            kind=kind,
            members=members,
            names=names,
            group_refs=group_refs,
            value_refs=value_refs,
            span=float(parsed.timespan.seconds),
            conds=conds,
            extended=extended.parsed if extended is not None else None,
        )

    def _field(self, name: str, target: SigmaRule) -> FieldRef:
        logsource = target.logsource if target.kind == "detection" else {}
        try:
            return self.fieldmap.resolve(name, logsource)
        except UnmappedField as exc:
            raise ValueError(f"group-by/field {exc}") from None

    # -- runtime --------------------------------------------------------------------
    def observe(
        self, event: Event, matched: list[SigmaRule], disabled: set[str] = frozenset()
    ) -> list[tuple[SigmaRule, list[Event]]]:
        fired: list[tuple[SigmaRule, list[Event]]] = []
        pending = [r.id for r in matched]
        done: set[str] = set()
        kept: Event | None = None  # the event as windows keep it, made once and shared
        while pending:
            member_id = pending.pop(0)
            for corr in self._by_member.get(member_id, ()):
                if corr.rule.id in disabled:
                    continue
                key = (corr.rule.id, member_id)
                if key in done:
                    continue
                done.add(key)
                kept = kept or slim(event)
                events = self._add(corr, member_id, event, kept)
                if events is not None:
                    corr.fired += 1
                    fired.append((corr.rule, events))
                    pending.append(corr.rule.id)
        fired.extend(self._close_windows(event.ts, disabled))
        return fired

    def _evict(self, corr: _Corr) -> None:
        """Forget the least recently used group."""
        _, items = corr.groups.popitem(last=False)
        corr.size -= len(items)
        corr.evicted += 1

    def _add(self, corr: _Corr, member_id: str, event: Event, kept: Event) -> list[Event] | None:
        """Window ``kept`` (``event`` without its payload; group and value are read from ``event``)."""
        ts = event.ts
        if ts > corr.max_ts:
            corr.max_ts = ts
        if ts < corr.max_ts - corr.span - self.max_lateness:
            corr.late_dropped += 1
            return None
        group = tuple(_key(event, ref) for ref in corr.group_refs.get(member_id, ()))
        value = None
        if corr.kind == "value_count":
            ref = corr.value_refs.get(member_id)
            forms = str_forms(ref.get(event)) if ref is not None else ()
            if not forms:
                return None  # an event without the counted field adds no value
            value = str(bounded(forms[0].lower()))  # counted for distinctness only
        items: list[_Item] | None = corr.groups.get(group)
        if items is None:
            if len(corr.groups) >= self.max_groups:
                self._evict(corr)
            items = []
            corr.groups[group] = items
        else:
            corr.groups.move_to_end(group)
        before = len(items)
        self._seq += 1
        for index, member in enumerate(corr.members):
            if member == member_id:
                bisect.insort(items, _Item(ts, self._seq, index, value, kept))
        while len(items) > self.max_events:
            items.pop(0)
        if not corr.bounded_above:
            horizon = corr.max_ts - corr.span - self.max_lateness
            while items and items[0].ts < horizon:
                items.pop(0)
        corr.size += len(items) - before
        while corr.size > self.max_items and len(corr.groups) > 1:
            self._evict(corr)  # this group is the most recently used: never the one evicted
        if corr.bounded_above:
            return None  # decided when the window closes (_close_windows evicts)
        window = self._window_with(corr, items, ts)
        if window is None:
            return None
        corr.groups.pop(group, None)
        corr.size -= len(items)
        return _unique_events(window)

    def _window_with(self, corr: _Corr, items: list[_Item], ts: float) -> list[_Item] | None:
        """A window of ``span`` that contains ``ts`` and satisfies the condition."""
        times = [i.ts for i in items]
        lo = bisect.bisect_left(times, ts - corr.span)
        hi = bisect.bisect_right(times, ts)
        for start in range(lo, hi):
            end = bisect.bisect_right(times, times[start] + corr.span)
            window = items[start:end]
            if _satisfied(corr, window):
                return window
        return None

    def _close_windows(self, now: float, disabled: set[str]) -> list[tuple[SigmaRule, list[Event]]]:
        out: list[tuple[SigmaRule, list[Event]]] = []
        for corr in self._corrs:
            if not corr.bounded_above or corr.rule.id in disabled:
                continue
            watermark = corr.max_ts - self.max_lateness
            if watermark <= corr.closed_until:
                continue
            corr.closed_until = watermark
            for group in list(corr.groups):
                items = corr.groups[group]
                before = len(items)
                while items and items[0].ts + corr.span < watermark:
                    start = items[0].ts
                    end = bisect.bisect_right([i.ts for i in items], start + corr.span)
                    window = items[:end]
                    if _satisfied(corr, window):
                        corr.fired += 1
                        out.append((corr.rule, _unique_events(window)))
                        del items[:end]
                    else:
                        items.pop(0)
                corr.size -= before - len(items)
                if not items:
                    del corr.groups[group]
        return out

    def stats(self) -> dict[str, dict]:
        return {
            c.rule.id: {
                "groups": len(c.groups),
                "events": sum(len(v) for v in c.groups.values()),
                "evicted": c.evicted,
                "late_dropped": c.late_dropped,
                "fired": c.fired,
            }
            for c in self._corrs
        }


def _satisfied(corr: _Corr, window: list[_Item]) -> bool:
    if not window:
        return False
    if corr.kind == "event_count":
        measure = float(len({id(i.event) for i in window}))
    elif corr.kind == "value_count":
        measure = float(len({i.value for i in window if i.value is not None}))
    elif corr.extended is not None:
        present = {i.member for i in window}
        return _eval_extended(corr.extended, corr.names, present)
    elif corr.kind == "temporal":
        measure = float(len({i.member for i in window}))
    else:
        measure = float(_ordered_chain(window, len(corr.members)))
    return all(OPS[op](measure, bound) for op, bound in corr.conds)


def _ordered_chain(window: list[_Item], count: int) -> int:
    """Longest prefix of the member order found as a time-ordered chain in the window."""
    best = 0
    for start, item in enumerate(window):
        if item.member != 0:
            continue
        need, last = 1, item.ts
        for other in window[start + 1 :]:
            if need < count and other.member == need and other.ts >= last:
                need += 1
                last = other.ts
        best = max(best, need)
        if best == count:
            break
    return best


def _eval_extended(node: Any, names: dict[str, int], present: set[int]) -> bool:
    if isinstance(node, SigmaRuleReference):
        return names.get(node.reference, -1) in present
    if isinstance(node, CorrelationConditionAND):
        return all(_eval_extended(a, names, present) for a in node.args)
    if isinstance(node, CorrelationConditionOR):
        return any(_eval_extended(a, names, present) for a in node.args)
    if isinstance(node, CorrelationConditionNOT):
        return not _eval_extended(node.args[0], names, present)
    return False


def _key(event: Event, ref: FieldRef) -> str:
    value = ref.get(event)
    if value is MISSING or value is None:
        return ""
    forms = str_forms(value)
    return str(bounded(forms[0].lower())) if forms else ""


def _unique_events(window: list[_Item]) -> list[Event]:
    seen: set[int] = set()
    out: list[Event] = []
    for item in window:
        if id(item.event) not in seen:
            seen.add(id(item.event))
            out.append(item.event)
    return out


def _alias_for(aliases: dict, name: str, target: SigmaRule) -> str:
    alias = aliases.get(name)
    if alias is None:
        return name
    for ref, field_name in alias.mapping.items():
        if ref.reference in (target.id, target.name, target.title):
            return field_name
    return name


def _conditions(rule: SigmaRule, cond: SigmaCorrelationCondition) -> list[tuple[str, float]]:
    """Every operator of the condition map (the spec allows a range such as gt + lte)."""
    raw = _raw_condition(rule)
    if isinstance(raw, dict):
        out = [(op, float(v)) for op, v in raw.items() if op in OPS and isinstance(v, (int, float))]
        if out:
            return out
    return [(cond.op.name.lower(), float(cond.count))]


def _raw_document(rule: SigmaRule) -> dict:
    try:
        for doc in load_yaml(rule.yaml):  # as the loader read it (dates stay strings)
            if (
                isinstance(doc, dict)
                and "correlation" in doc
                and doc.get("id") in (None, rule.id)
                and doc.get("title") == rule.title
            ):
                return doc
    except yaml.YAMLError:
        pass
    return {}


def _raw_condition(rule: SigmaRule) -> Any:
    corr = _raw_document(rule).get("correlation")
    return corr.get("condition") if isinstance(corr, dict) else None


def _has_condition(rule: SigmaRule) -> bool:
    return _raw_condition(rule) is not None


def _referenced_first(correlations: list[SigmaRule], by_ref: dict[str, SigmaRule]) -> list[SigmaRule]:
    ordered: list[SigmaRule] = []
    placed: set[str] = set()

    def place(rule: SigmaRule, depth: int = 0) -> None:
        if rule.id in placed or depth > 32:
            return
        placed.add(rule.id)
        for ref in rule.parsed.rules or []:
            target = by_ref.get(ref.reference)
            if target is not None and target.kind == "correlation":
                place(target, depth + 1)
        ordered.append(rule)

    for rule in correlations:
        place(rule)
    return ordered
