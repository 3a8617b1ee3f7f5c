"""A baseline's arithmetic, worked by hand: bounded top-K tables, the volume EMA over the
buckets that held events, late events, and the stored form read back."""

from __future__ import annotations

from agentwatch.events.model import Event
from agentwatch.ueba.baseline import Baseline, bump
from agentwatch.ueba.features import sources, templates


def test_a_full_table_drops_its_least_frequent_value() -> None:
    table: dict[str, int] = {}
    for key in ["a", "a", "a", "b", "b", "c"]:
        bump(table, key, 3)
    bump(table, "d", 3)  # c (1) goes
    assert table == {"a": 3, "b": 2, "d": 1}


def test_the_ema_folds_each_bucket_that_held_events() -> None:
    b = Baseline("id", "host", "h")
    hour = 3600.0
    for _ in range(4):
        assert b.add_volume(10 * hour + 5, hour, 0.5)  # bucket 10: 4 events
    for _ in range(8):
        b.add_volume(13 * hour, hour, 0.5)  # bucket 13 (11 and 12 were quiet): 8 events
    assert (b.buckets, b.ema, b.bucket_count) == (1, 4.0, 8)  # the first bucket sets the EMA
    b.add_volume(14 * hour, hour, 0.5)
    assert (b.buckets, b.ema) == (2, 0.5 * 8 + 0.5 * 4.0)  # 6.0
    assert not b.add_volume(13 * hour + 1, hour, 0.5)  # late: counted in no bucket
    assert b.bucket_count == 1


def test_the_stored_form_reads_back_and_a_smaller_top_k_keeps_the_most_frequent() -> None:
    b = Baseline("id", "host", "h")
    for i, ts in enumerate((100.0, 50.0, 7300.0)):
        b.learn(ts, int(ts // 3600) % 24, ["type:x", f"format:{i}"], ["tool:t"] * (i + 1), 8)
    assert (b.first_seen, b.last_seen, b.event_count) == (50.0, 7300.0, 3)
    assert b.hours[0] == 2 and b.hours[2] == 1
    row = {"entity_id": "id", "type": "host", "value": "h", "first_seen": 50.0, "last_seen": 7300.0, "event_count": 3}
    back = Baseline.from_state(row, b.to_state(), 2)
    assert back.templates == {"tool:t": 6}
    assert back.sources == {"type:x": 3, "format:0": 1}  # of the 1-count formats, the first ranked stays
    assert back.hours == b.hours


def test_features_name_the_tool_model_process_and_sources() -> None:
    e = Event(
        body={"process": {"exe": "/usr/bin/curl"}, "data": {"tool": "web_fetch", "model": {"id": "gpt-4o"}}},
        event_id="e1",
        event_type="agent.tool_call",
        ts=0.0,
        received_at=0.0,
        source_format="aop",
        agent="claude",
    )
    assert sources(e) == ["type:agent.tool_call", "format:aop", "agent:claude"]
    assert templates(e) == ["tool:web_fetch", "model:gpt-4o", "process:curl"]
