"""One entity's learnt behaviour, kept in memory and folded event by event.

Everything is measured in event time, never wall-clock time, so replaying a week of events
builds the same baseline as living through it:

- ``hours``: events per hour of the day (UTC);
- ``sources`` / ``templates``: the ``top_k`` most frequent values (see ``ueba.features``) with
  their counts. A full table makes room for a new value by dropping its least frequent one, so
  an entity with more than ``top_k`` distinct values may see a rare one called new again;
- the volume EMA: events per ``volume_bucket_s`` bucket, averaged over the buckets that held
  events (a quiet night is not a bucket of zero, or the next morning's usual load would look
  like a burst). ``bucket_start``/``bucket_count`` is the bucket being filled. The last
  :data:`KEEP` closed buckets are kept with their counts (``recent``), the EMA of the older ones
  in ``pre_ema``/``pre_buckets`` (``pre_last`` the newest of them): an event older than the
  bucket being filled still counts in its bucket when that is one of them (the EMA is folded
  again), so the order events come in, or which node learns them, does not change the volume
  (see ``ueba.merge``); an older one teaches the hours, sources and templates, not the volume;
- first and last event time and the event count, which decide the warm-up;
- ``generation`` (the stored row's incarnation: a reset and a new row make another) and
  ``version`` (its writes), as last read or written by this node; ``base``, while the baseline
  has changes not yet written, what it held when last read or written (the merge adds the
  difference to the stored row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

KEEP = 24  # closed volume buckets kept with their counts (see the module docstring)


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
    pre_ema: float = 0.0  # the EMA of the closed buckets older than ``recent``
    pre_buckets: int = 0
    pre_last: float | None = None  # the newest bucket folded into ``pre_ema``
    recent: list[tuple[float, int]] = field(default_factory=list)  # (start, events), oldest first
    generation: str | None = None
    version: int = 0
    active: bool = False  # past the warm-up once: it never warms up again (not stored: settings may change)
    stored: bool = False  # read from or written to the store by this node (not stored itself)
    base: Baseline | None = None  # while changed and not yet written: the state last read or written

    def copy(self) -> Baseline:
        """An independent copy (without ``base``)."""
        return replace(
            self,
            hours=list(self.hours),
            sources=dict(self.sources),
            templates=dict(self.templates),
            recent=list(self.recent),
            base=None,
        )

    def assign(self, other: Baseline) -> None:
        """Take ``other``'s learnt state, in place (``active``, ``stored`` and ``base`` stay)."""
        for f in fields(self):
            if f.name not in ("active", "stored", "base"):
                setattr(self, f.name, getattr(other, f.name))

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
                self.recent.append((self.bucket_start, self.bucket_count))
                if len(self.recent) > KEEP:
                    self._fold_oldest(alpha)
            self.bucket_start, self.bucket_count = start, 0
        elif start < self.bucket_start:
            self._late(start, alpha)
            return False
        self.bucket_count += 1
        return True

    def _fold_oldest(self, alpha: float) -> None:
        start, count = self.recent.pop(0)
        self.pre_ema, self.pre_buckets = fold(self.pre_ema, self.pre_buckets, [count], alpha)
        self.pre_last = start

    def _late(self, start: float, alpha: float) -> None:
        """An event older than the bucket being filled: counted in its bucket when that is one of
        the ``recent`` ones (or newer than all folded ones), then the EMA is folded again."""
        if self.pre_last is not None and start <= self.pre_last:
            return
        counts = dict(self.recent)
        counts[start] = counts.get(start, 0) + 1
        self.recent = sorted(counts.items())
        while len(self.recent) > KEEP:
            self._fold_oldest(alpha)
        self.ema, self.buckets = fold(self.pre_ema, self.pre_buckets, [c for _, c in self.recent], alpha)

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
            "pre_ema": self.pre_ema,
            "pre_buckets": self.pre_buckets,
            "pre_last": self.pre_last,
            "recent": [[s, c] for s, c in self.recent],
            "generation": self.generation,
            "version": self.version,
        }

    @classmethod
    def from_state(cls, row: dict[str, Any], state: dict[str, Any], cap: int) -> Baseline:
        """A baseline from a stored row and its state; a ``top_k`` made smaller since keeps the
        most frequent values."""
        hours = [int(h) for h in state.get("hours", [])][:24]
        ema, buckets, start = float(state.get("ema", 0.0)), int(state.get("buckets", 0)), state.get("bucket_start")
        if "pre_buckets" in state:
            pre_ema, pre_buckets, pre_last = float(state["pre_ema"]), int(state["pre_buckets"]), state.get("pre_last")
        else:  # written before the recent buckets were kept: every closed one is folded, before the current
            pre_ema, pre_buckets = ema, buckets
            pre_last = math.nextafter(float(start), -math.inf) if buckets and start is not None else None
        return cls(
            entity_id=row["entity_id"],
            type=row["type"],
            value=row["value"],
            hours=hours + [0] * (24 - len(hours)),
            sources=_top(state.get("sources", {}), cap),
            templates=_top(state.get("templates", {}), cap),
            ema=ema,
            buckets=buckets,
            bucket_start=start,
            bucket_count=int(state.get("bucket_count", 0)),
            burst_bucket=state.get("burst_bucket"),
            first_seen=float(row["first_seen"]),
            last_seen=float(row["last_seen"]),
            event_count=int(row["event_count"]),
            pre_ema=pre_ema,
            pre_buckets=pre_buckets,
            pre_last=pre_last,
            recent=[(float(s), int(c)) for s, c in state.get("recent", [])][-KEEP:],
            generation=state.get("generation"),
            version=int(state.get("version", 0)),
        )


def fold(ema: float, buckets: int, counts: list[int], alpha: float) -> tuple[float, int]:
    """The volume EMA after folding these bucket counts, oldest first, into ``ema`` (of
    ``buckets`` buckets): the same arithmetic as :meth:`Baseline.add_volume`, so the same bits."""
    for n in counts:
        count = float(n)
        ema = count if buckets == 0 else alpha * count + (1 - alpha) * ema
        buckets += 1
    return ema, buckets


def _top(table: dict[str, int], cap: int) -> dict[str, int]:
    """A copy of ``table``, cut to its ``cap`` most frequent values. One within the cap keeps its
    order (which decides ties when it is full): reading a baseline back is on the hot path when
    more entities are active than memory holds."""
    if len(table) <= cap:
        return dict(table)
    ranked = sorted(table.items(), key=lambda kv: -kv[1])[:cap]
    return {k: int(v) for k, v in ranked}
