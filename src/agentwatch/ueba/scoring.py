"""Scoring an entity's events against its baseline, and what one batch's anomaly holds.

Four reasons, each checked before the event is learnt (so it is compared with what came
before it):

- ``new_source``: a source the baseline never saw (or no longer keeps among its top ones);
- ``new_template``: likewise for a tool, model or process;
- ``rare_hour``: the event's hour of the day (UTC) held less than ``hour_share_threshold`` of
  the entity's events;
- ``burst``: the volume bucket holds more than ``volume_factor`` times the EMA and at least
  ``volume_min_events`` events (reported once per bucket).

Each event's own reasons make its score, ``1 - prod(1 - weight)`` over their kinds
(:func:`score_of`); an entity's events of one batch scoring ``score_threshold`` or more are
gathered into one :class:`Verdict`, whose score is the highest of theirs. An event is judged on
its own reasons only, so where the pipeline happens to cut its batches changes neither which
events are flagged nor their scores (a new source at 11:00 does not add to a call at 03:00 that
happens to share its batch).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentwatch.events.model import Event
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.settings import UebaSettings

KINDS = ("new_source", "new_template", "rare_hour", "burst")
MAX_VALUES = 16  # values named per reason


def weights(s: UebaSettings) -> dict[str, float]:
    return {
        "new_source": s.weight_new_source,
        "new_template": s.weight_new_template,
        "rare_hour": s.weight_rare_hour,
        "burst": s.weight_burst,
    }


def score_of(found: list[tuple[str, Any]], weight: dict[str, float]) -> float:
    """One event's score: ``1 - prod(1 - weight)`` over the kinds of its reasons (each kind once)."""
    left = 1.0
    for kind in {k for k, _ in found}:
        left *= 1.0 - weight[kind]
    return round(1.0 - left, 4)


@dataclass
class Verdict:
    baseline: Baseline
    values: dict[str, list[Any]] = field(default_factory=dict)  # reason kind -> what was seen
    events: list[Event] = field(default_factory=list)
    burst: dict[str, Any] | None = None
    best: float = 0.0  # the highest score of its events
    ts: float | None = None  # the latest event time of its events (as the detector took it)

    def add(self, event: Event, ts: float, found: list[tuple[str, Any]], score: float, keep: int) -> None:
        """An event scoring over the threshold with its reasons; at most ``keep`` events are kept."""
        for kind, value in found:
            if kind == "burst":
                self.values.setdefault("burst", [value["bucket_start"]])
                self.burst = value
                continue
            seen = self.values.setdefault(kind, [])
            if kind == "rare_hour":  # an hour once, with its share when first flagged
                if len(seen) < MAX_VALUES and all(h["hour"] != value["hour"] for h in seen):
                    seen.append(value)
            elif value not in seen and len(seen) < MAX_VALUES:
                seen.append(value)
        self.best = max(self.best, score)
        self.ts = ts if self.ts is None else max(self.ts, ts)
        if len(self.events) < keep:
            self.events.append(event)

    def score(self, s: UebaSettings) -> float:
        return self.best

    def primary(self, s: UebaSettings) -> str:
        """The reason that weighs most (ties: the order of :data:`KINDS`)."""
        weights = [s.weight_new_source, s.weight_new_template, s.weight_rare_hour, s.weight_burst]
        present = [(w, -i, k) for i, (k, w) in enumerate(zip(KINDS, weights, strict=True)) if k in self.values]
        return max(present)[2]

    def reasons(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for kind in KINDS:
            if kind not in self.values:
                continue
            if kind == "rare_hour":
                out.append({"kind": kind, "hours": self.values[kind]})
            elif kind == "burst":
                out.append({"kind": kind, **(self.burst or {})})
            else:
                out.append({"kind": kind, "values": self.values[kind]})
        return out

    def source(self) -> str:
        """The wire format most of the flagged events came in."""
        return Counter(e.source_format for e in self.events).most_common(1)[0][0]


def check(b: Baseline, hour: int, sources: list[str], templates: list[str], s: UebaSettings) -> list[tuple[str, Any]]:
    """The reasons an event gives against ``b`` (before it is learnt), as (kind, value) pairs."""
    found: list[tuple[str, Any]] = []
    known = b.sources
    for src in sources:
        if src not in known:
            found.append(("new_source", src))
    known = b.templates
    for tpl in templates:
        if tpl not in known:
            found.append(("new_template", tpl))
    share = b.hours[hour] / b.event_count
    if share < s.hour_share_threshold:
        found.append(("rare_hour", {"hour": hour, "share": round(share, 4)}))
    return found


def burst_of(b: Baseline, s: UebaSettings) -> dict[str, Any] | None:
    """After an event was counted in its volume bucket: the burst it completes, once per bucket."""
    if b.bucket_count < s.volume_min_events or b.buckets == 0 or b.burst_bucket == b.bucket_start:
        return None
    if b.bucket_count <= s.volume_factor * b.ema:
        return None
    b.burst_bucket = b.bucket_start
    return {"bucket_start": b.bucket_start, "count": b.bucket_count, "ema": round(b.ema, 3)}
