"""The merge rules (``ueba.merge``), checked against one baseline learnt from the whole stream:
two halves learnt apart and merged give what one learner of every event holds, statistic by
statistic; a full top-K table keeps its bound; the volume does not depend on which events came
late; a row stored before the merge reads back and merges."""

from __future__ import annotations

import pytest

from agentwatch.ueba.baseline import KEEP, Baseline
from agentwatch.ueba.merge import merged

HOUR = 3600.0
ALPHA = 0.3
CAP = 8


def stream(days: int = 1) -> list[tuple[float, list[str], list[str]]]:
    """Event time, sources and templates: 2-5 events an hour, 09:00-17:59, a tool per minute."""
    out = []
    for d in range(days):
        for h in range(9, 18):
            for m in range(0, 2 + (d + h) % 4 * 15, 15):
                ts = d * 86_400 + h * HOUR + m * 60
                out.append((ts, ["type:agent.tool_call", f"format:{'aop' if m else 'oisp'}"], [f"tool:t{m % 4}"]))
    return out


def learn(b: Baseline, events: list[tuple[float, list[str], list[str]]], cap: int = CAP) -> Baseline:
    for ts, srcs, tpls in events:
        b.learn(ts, int(ts // 3600) % 24, srcs, tpls, cap)
        b.add_volume(ts, HOUR, ALPHA)
    return b


def fresh() -> Baseline:
    return Baseline("e", "host", "h")


def assert_same(got: Baseline, want: Baseline) -> None:
    assert got.event_count == want.event_count
    assert got.hours == want.hours
    assert (got.first_seen, got.last_seen) == (want.first_seen, want.last_seen)
    assert got.sources == want.sources
    assert got.templates == want.templates
    assert (got.buckets, got.bucket_start, got.bucket_count) == (want.buckets, want.bucket_start, want.bucket_count)
    assert got.ema == pytest.approx(want.ema, rel=1e-12)
    assert got.recent == want.recent


def test_two_halves_merged_hold_what_one_learner_of_every_event_holds() -> None:
    events = stream()
    one = learn(fresh(), events)
    a, b = learn(fresh(), events[0::2]), learn(fresh(), events[1::2])
    stored = merged(fresh(), a, None, CAP, ALPHA)  # the first writer, into an empty row
    assert_same(stored, a)
    assert_same(merged(stored, b, None, CAP, ALPHA), one)
    assert_same(merged(merged(fresh(), b, None, CAP, ALPHA), a, None, CAP, ALPHA), one)  # in either order


def test_only_what_was_learnt_since_the_base_is_added() -> None:
    events = stream(days=2)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    one = learn(fresh(), events)
    a = learn(fresh(), first[0::2])
    b = learn(fresh(), first[1::2])
    stored = merged(merged(fresh(), a, None, CAP, ALPHA), b, None, CAP, ALPHA)
    # node a takes the merged row, learns its half of the second part, writes again
    base = stored.copy()
    now = learn(stored.copy(), second[0::2])
    stored = merged(stored, now, base, CAP, ALPHA)
    # node b still holds only what it learnt itself; it adds what it learnt since its own write
    b_base = b.copy()
    learn(b, second[1::2])
    assert_same(merged(stored, b, b_base, CAP, ALPHA), one)


def test_counts_and_hours_add_and_times_take_the_earliest_and_latest() -> None:
    a = learn(fresh(), [(10 * HOUR, ["s:1"], ["t:1"]), (30 * HOUR, ["s:1"], ["t:1"])])
    b = learn(fresh(), [(5 * HOUR, ["s:2"], ["t:1"]), (12 * HOUR, ["s:1"], [])])
    m = merged(a, b, None, CAP, ALPHA)
    assert m.event_count == 4
    assert (m.first_seen, m.last_seen) == (5 * HOUR, 30 * HOUR)
    assert (m.hours[5], m.hours[6], m.hours[10], m.hours[12]) == (1, 1, 1, 1)  # 30 h is 06:00
    assert m.sources == {"s:1": 3, "s:2": 1}
    assert m.templates == {"t:1": 3}


def test_a_full_table_keeps_its_bound_and_its_most_frequent_values() -> None:
    a = learn(fresh(), [(HOUR, ["x"], [f"tool:{i}"]) for i in range(3) for _ in range(i + 1)], cap=3)
    b = learn(fresh(), [(HOUR, ["x"], ["tool:9"]) for _ in range(5)] + [(HOUR, ["x"], ["tool:8"])], cap=3)
    m = merged(a, b, None, 3, ALPHA)
    assert m.templates == {"tool:9": 5, "tool:2": 3, "tool:1": 2}  # the two seen once go
    assert m.sources == {"x": 12}


def test_a_value_dropped_and_learnt_again_counts_what_it_learnt_since() -> None:
    base = learn(fresh(), [(HOUR, [], [t]) for t in ("tool:b", "tool:b", "tool:b", "tool:a")], cap=2)
    now = base.copy()
    learn(now, [(HOUR, [], [t]) for t in ("tool:c", "tool:c", "tool:c", "tool:c", "tool:a", "tool:b")], cap=2)
    # c took a's place; a came back in b's (3, below c's 4); b came back in a's
    assert now.templates == {"tool:c": 4, "tool:b": 1}
    m = merged(base, now, base, 2, ALPHA)  # nobody else wrote: the row is still the base
    assert m.templates == {"tool:b": 4, "tool:c": 4}  # b: 3 stored + 1 learnt again; a (1 + 1 unseen) goes
    assert m.event_count == 10


def test_the_volume_does_not_depend_on_which_events_came_late() -> None:
    events = stream()
    in_order = learn(fresh(), events)
    shuffled = learn(fresh(), events[len(events) // 2 :] + events[: len(events) // 2])
    assert_same(shuffled, in_order)
    assert learn(fresh(), events[::-1]).ema == pytest.approx(in_order.ema, rel=1e-12)


def test_a_bucket_older_than_the_kept_ones_is_dropped_as_late() -> None:
    b = fresh()
    for i in range(KEEP + 3):  # one event in each of KEEP + 3 hours: 2 folded into the older EMA
        b.add_volume((10 + i) * HOUR, HOUR, ALPHA)
    assert (b.pre_buckets, b.pre_last, len(b.recent)) == (2, 11 * HOUR, KEEP)
    before = (b.ema, b.buckets, list(b.recent))
    assert not b.add_volume(11 * HOUR + 5, HOUR, ALPHA)  # folded already: it teaches no volume
    assert (b.ema, b.buckets, b.recent) == before
    late = fresh()
    late.add_volume(11 * HOUR, HOUR, ALPHA)
    late.event_count, late.first_seen, late.last_seen = 1, 11 * HOUR, 11 * HOUR
    m = merged(b, late, None, CAP, ALPHA)
    assert (m.ema, m.buckets, m.recent) == before


def test_the_latest_burst_bucket_is_kept() -> None:
    a, b = fresh(), fresh()
    a.burst_bucket, b.burst_bucket = 10 * HOUR, 12 * HOUR
    assert merged(a, b, None, CAP, ALPHA).burst_bucket == 12 * HOUR
    assert merged(b, a, None, CAP, ALPHA).burst_bucket == 12 * HOUR


def test_a_row_stored_before_the_merge_reads_back_and_merges() -> None:
    events = stream()
    half = len(events) // 2
    a = learn(fresh(), events[:half])
    old = {k: v for k, v in a.to_state().items() if k in ("hours", "sources", "templates", "ema", "buckets")}
    old.update(bucket_start=a.bucket_start, bucket_count=a.bucket_count, burst_bucket=None)
    row = {"entity_id": "e", "type": "host", "value": "h", "first_seen": a.first_seen, "last_seen": a.last_seen}
    stored = Baseline.from_state({**row, "event_count": a.event_count}, old, CAP)
    assert (stored.pre_ema, stored.pre_buckets, stored.recent, stored.version) == (a.ema, a.buckets, [], 0)
    b = learn(fresh(), events[half:])  # all newer than the stored row's current bucket: nothing is lost
    m = merged(stored, b, None, CAP, ALPHA)
    one = learn(fresh(), events)
    assert m.event_count == one.event_count
    assert m.ema == pytest.approx(one.ema, rel=1e-12)
    assert m.buckets == one.buckets
    assert m.bucket_count == one.bucket_count
