"""Merging what one node learnt into a stored baseline that other nodes also write.

A node writes, for each baseline it changed, the difference between the baseline now and
``base`` (what it held when it last read or wrote it) added to the row as stored now, so the
learning of every node adds up instead of the last writer's replacing the others'. Each
statistic has its rule:

- the event count and the events per hour of the day: counts, they add;
- first and last event time: the earliest and the latest;
- the top-K sources and templates: the counts gained per value add, then the ``top_k`` most
  frequent are kept. Exact while an entity has at most ``top_k`` values (nothing was dropped);
  a value dropped here and learnt again counts what it learnt since;
- the volume: the events gained per bucket add up in the stored row's last buckets
  (:data:`~agentwatch.ueba.baseline.KEEP` closed ones and the one being filled), then the EMA is
  folded again over them, in bucket order, from the EMA of the older ones: the same numbers as
  one node learning every event. A gain in a bucket the row has already folded into its older
  EMA (a node more than ``KEEP`` buckets behind the others) is dropped, as a late event is;
- the bucket already reported as a burst: the latest.

The baseline has no running mean or variance (its volume is an EMA), so no such rule is needed.
"""

from __future__ import annotations

from agentwatch.ueba.baseline import KEEP, Baseline, _top, fold


def _gained(now: dict[str, int], base: dict[str, int]) -> dict[str, int]:
    """What each value gained since ``base``; one now counted below its base count was dropped
    from the full table and learnt again since, so all it holds is new."""
    out: dict[str, int] = {}
    for key, n in now.items():
        before = base.get(key, 0)
        gained = n - before if n >= before else n
        if gained:
            out[key] = gained
    return out


def _add(table: dict[str, int], gains: dict[str, int], cap: int) -> dict[str, int]:
    out = dict(table)
    for key, n in gains.items():
        out[key] = out.get(key, 0) + n
    return _top(out, cap)


def buckets_of(b: Baseline) -> dict[float, int]:
    """Events per volume bucket that ``b`` still holds bucket by bucket (recent and current)."""
    out = dict(b.recent)
    if b.bucket_start is not None and b.bucket_count:
        out[b.bucket_start] = out.get(b.bucket_start, 0) + b.bucket_count
    return out


def _merge_volume(out: Baseline, gains: dict[float, int], alpha: float) -> None:
    counts = buckets_of(out)
    for start, n in gains.items():
        if out.pre_last is None or start > out.pre_last:
            counts[start] = counts.get(start, 0) + n
    if not counts:
        return
    *closed, current = sorted(counts)
    while len(closed) > KEEP:
        start = closed.pop(0)
        out.pre_ema, out.pre_buckets = fold(out.pre_ema, out.pre_buckets, [counts[start]], alpha)
        out.pre_last = start
    out.recent = [(s, counts[s]) for s in closed]
    out.ema, out.buckets = fold(out.pre_ema, out.pre_buckets, [counts[s] for s in closed], alpha)
    out.bucket_start, out.bucket_count = current, counts[current]


def merged(stored: Baseline, now: Baseline, base: Baseline | None, cap: int, alpha: float) -> Baseline:
    """``stored`` plus what ``now`` learnt since ``base`` (None: since nothing). A new baseline;
    its generation and version are ``stored``'s."""
    out = stored.copy()
    if base is None:
        base = Baseline(now.entity_id, now.type, now.value)
    added = now.event_count - base.event_count
    if added > 0:
        if stored.event_count == 0:
            out.first_seen, out.last_seen = now.first_seen, now.last_seen
        else:
            out.first_seen = min(stored.first_seen, now.first_seen)
            out.last_seen = max(stored.last_seen, now.last_seen)
        out.event_count = stored.event_count + added
        out.hours = [s + max(n - b, 0) for s, n, b in zip(stored.hours, now.hours, base.hours, strict=True)]
        out.sources = _add(stored.sources, _gained(now.sources, base.sources), cap)
        out.templates = _add(stored.templates, _gained(now.templates, base.templates), cap)
    before = buckets_of(base)
    gains = {s: n - before.get(s, 0) for s, n in buckets_of(now).items() if n > before.get(s, 0)}
    _merge_volume(out, gains, alpha)
    if now.burst_bucket is not None and (out.burst_bucket is None or now.burst_bucket > out.burst_bucket):
        out.burst_bucket = now.burst_bucket
    return out
