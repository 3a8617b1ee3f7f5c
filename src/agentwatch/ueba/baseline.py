"""One entity's learnt behaviour, kept in memory and folded event by event.

Everything is measured in event time, never wall-clock time, so replaying a week of events
builds the same baseline as living through it:

- ``hours``: events per hour of the day (UTC);
- ``sources`` / ``templates``: the ``top_k`` most frequent values (see ``ueba.features``) with
  their counts. A full table makes room for a new value by dropping its least frequent one, so
  an entity with more than ``top_k`` distinct values may see a rare one called new again;
- the volume EMA: events per ``volume_bucket_s`` bucket, averaged over the buckets that held
  events (a quiet night is not a bucket of zero, or the next morning's usual load would look
  like a burst). ``bucket_start``/``bucket_count`` is the bucket being filled; events older
  than it still teach the hours, sources and templates, but not the volume;
- first and last event time and the event count, which decide the warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def bump(table: dict[str, int], key: str, cap: int) -> None:
    """Count ``key`` in ``table``, keeping at most ``cap`` keys (the least frequent goes)."""
    if key in table:
        table[key] += 1
        return
    if len(table) >= cap:
        del table[min(table, key=table.__getitem__)]
    table[key] = 1


@dataclass(slots=True)
class Baseline:
    entity_id: str
    type: str
    value: str
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    sources: dict[str, int] = field(default_factory=dict)
    templates: dict[str, int] = field(default_factory=dict)
    ema: float = 0.0
    buckets: int = 0  # buckets folded into the EMA
    bucket_start: float | None = None
    bucket_count: int = 0
    burst_bucket: float | None = None  # the bucket already reported as a burst
    first_seen: float = 0.0
    last_seen: float = 0.0
    event_count: int = 0
    active: bool = False  # past the warm-up once: it never warms up again (not stored: settings may change)
    stored: bool = False  # read from or written to the store by this node (not stored itself)

    def warmed(self, events: int, span_s: float) -> bool:
        if not self.active:
            self.active = self.event_count >= events and self.last_seen - self.first_seen >= span_s
        return self.active

    def hour_share(self, hour: int) -> float:
        return self.hours[hour] / self.event_count if self.event_count else 0.0

    def add_volume(self, ts: float, bucket_s: float, alpha: float) -> bool:
        """Count an event at ``ts`` in its volume bucket; False when it is older than the bucket
        being filled (it teaches no volume)."""
        start = ts - ts % bucket_s
        if self.bucket_start is None or start > self.bucket_start:
            if self.bucket_start is not None and self.bucket_count:
                count = float(self.bucket_count)
                self.ema = count if self.buckets == 0 else alpha * count + (1 - alpha) * self.ema
                self.buckets += 1
            self.bucket_start, self.bucket_count = start, 0
        elif start < self.bucket_start:
            return False
        self.bucket_count += 1
        return True

    def learn(self, ts: float, hour: int, sources: list[str], templates: list[str], cap: int) -> None:
        self.hours[hour] += 1
        table = self.sources
        for key in sources:
            if key in table:
                table[key] += 1
            else:
                bump(table, key, cap)
        table = self.templates
        for key in templates:
            if key in table:
                table[key] += 1
            else:
                bump(table, key, cap)
        if self.event_count == 0:
            self.first_seen = self.last_seen = ts
        elif ts < self.first_seen:
            self.first_seen = ts
        elif ts > self.last_seen:
            self.last_seen = ts
        self.event_count += 1

    def to_state(self) -> dict[str, Any]:
        """Everything learnt, as JSON (what the store keeps)."""
        return {
            "hours": self.hours,
            "sources": self.sources,
            "templates": self.templates,
            "ema": self.ema,
            "buckets": self.buckets,
            "bucket_start": self.bucket_start,
            "bucket_count": self.bucket_count,
            "burst_bucket": self.burst_bucket,
        }

    @classmethod
    def from_state(cls, row: dict[str, Any], state: dict[str, Any], cap: int) -> Baseline:
        """A baseline from a stored row and its state; a ``top_k`` made smaller since keeps the
        most frequent values."""
        hours = [int(h) for h in state.get("hours", [])][:24]
        return cls(
            entity_id=row["entity_id"],
            type=row["type"],
            value=row["value"],
            hours=hours + [0] * (24 - len(hours)),
            sources=_top(state.get("sources", {}), cap),
            templates=_top(state.get("templates", {}), cap),
            ema=float(state.get("ema", 0.0)),
            buckets=int(state.get("buckets", 0)),
            bucket_start=state.get("bucket_start"),
            bucket_count=int(state.get("bucket_count", 0)),
            burst_bucket=state.get("burst_bucket"),
            first_seen=float(row["first_seen"]),
            last_seen=float(row["last_seen"]),
            event_count=int(row["event_count"]),
        )


def _top(table: dict[str, int], cap: int) -> dict[str, int]:
    """A copy of ``table``, cut to its ``cap`` most frequent values. One within the cap keeps its
    order (which decides ties when it is full): reading a baseline back is on the hot path when
    more entities are active than memory holds."""
    if len(table) <= cap:
        return dict(table)
    ranked = sorted(table.items(), key=lambda kv: -kv[1])[:cap]
    return {k: int(v) for k, v in ranked}
