"""Correlation rules in event time: each type, group-by, timespan edges, out-of-order and late events."""

from __future__ import annotations

from agentwatch.detect.sigma import SigmaEngine
from tests.detect.sigma.helpers import event, proc, rules

BASE = """\
title: Remote shell
id: 7a0c0a00-0000-4000-8000-000000000001
name: remote_shell
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: ssh
  condition: sel
---
title: Chmod
id: 7a0c0a00-0000-4000-8000-000000000002
name: chmod_x
logsource: {product: linux, category: process_creation}
detection:
  sel:
    CommandLine|contains: chmod +x
  condition: sel
"""


def correlation(body: str, **options) -> SigmaEngine:
    text = BASE + "---\ntitle: Correlated\nid: 7a0c0a00-0000-4000-8000-0000000000ff\ncorrelation:\n" + body
    return SigmaEngine(rules(text), **options)


def feed(eng: SigmaEngine, events) -> list[tuple[str, list]]:
    fired = []
    for ev in events:
        for rule, evs in eng.observe(ev, eng.match(ev)):
            fired.append((rule.title, sorted(e.ts for e in evs)))
    return fired


EVENT_COUNT = """\
  type: event_count
  rules: [remote_shell]
  group-by: [User]
  timespan: 60s
  condition: {gte: 3}
"""


def test_event_count_fires_once_with_out_of_order_events():
    eng = correlation(EVENT_COUNT)
    fired = feed(eng, [proc("ssh a", ts=100), proc("ssh b", ts=150), proc("ssh c", ts=120), proc("ssh d", ts=130)])
    assert fired == [("Correlated", [100, 120, 150])]


def test_event_count_groups_by_field():
    eng = correlation(EVENT_COUNT)
    evs = [proc("ssh", ts=1, user="alice"), proc("ssh", ts=2, user="bob"), proc("ssh", ts=3, user="alice")]
    assert feed(eng, evs) == []
    assert feed(eng, [proc("ssh", ts=4, user="alice")]) == [("Correlated", [1, 3, 4])]


def test_event_count_timespan_edge():
    inside = correlation(EVENT_COUNT)
    assert feed(inside, [proc("ssh", ts=0), proc("ssh", ts=30), proc("ssh", ts=60)]) == [("Correlated", [0, 30, 60])]
    outside = correlation(EVENT_COUNT)
    assert feed(outside, [proc("ssh", ts=0), proc("ssh", ts=30), proc("ssh", ts=61)]) == []


def test_non_matching_events_do_not_count():
    eng = correlation(EVENT_COUNT)
    assert feed(eng, [proc("ssh", ts=1), proc("ls", ts=2), proc("ls", ts=3), proc("ssh", ts=4)]) == []


def test_value_count_counts_distinct_values():
    eng = correlation(
        """\
  type: value_count
  rules: [remote_shell]
  group-by: [User]
  timespan: 10m
  condition: {gte: 3, field: CommandLine}
"""
    )
    same = [proc("ssh host1", ts=t) for t in (1, 2, 3, 4)]
    assert feed(eng, same) == []
    assert feed(eng, [proc("ssh host2", ts=5), proc("ssh host3", ts=6)]) == [("Correlated", [1, 2, 3, 4, 5, 6])]


TEMPORAL = """\
  type: {kind}
  rules: [remote_shell, chmod_x]
  group-by: [User]
  timespan: 5m
"""


def test_temporal_any_order_within_timespan():
    eng = correlation(TEMPORAL.format(kind="temporal"))
    assert feed(eng, [proc("chmod +x run.sh", ts=100), proc("ssh box", ts=200)]) == [("Correlated", [100, 200])]
    late = correlation(TEMPORAL.format(kind="temporal"))
    assert feed(late, [proc("chmod +x run.sh", ts=100), proc("ssh box", ts=401)]) == []


def test_temporal_requires_the_same_group():
    eng = correlation(TEMPORAL.format(kind="temporal"))
    assert feed(eng, [proc("chmod +x a", ts=1, user="alice"), proc("ssh b", ts=2, user="bob")]) == []


def test_temporal_ordered_needs_event_time_order_not_arrival_order():
    wrong = correlation(TEMPORAL.format(kind="temporal_ordered"))
    assert feed(wrong, [proc("chmod +x a", ts=10), proc("ssh b", ts=20)]) == []  # chmod before ssh: wrong order
    arrived_late = correlation(TEMPORAL.format(kind="temporal_ordered"))
    # ssh happened first (ts=10) but arrives after chmod (ts=20): event time decides, so it fires
    assert feed(arrived_late, [proc("chmod +x a", ts=20), proc("ssh b", ts=10)]) == [("Correlated", [10, 20])]


def test_upper_bounded_condition_is_decided_when_the_window_closes():
    eng = correlation(EVENT_COUNT.replace("{gte: 3}", "{lt: 2}"), max_lateness=0)
    assert feed(eng, [proc("ssh a", ts=0)]) == []  # window [0, 60] still open
    assert feed(eng, [proc("ls", ts=30)]) == []
    fired = feed(eng, [proc("ssh b", ts=100)])  # watermark passes 60: window [0, 60] had 1 event
    assert fired == [("Correlated", [0])]


def test_too_late_events_are_dropped_and_counted():
    eng = correlation(EVENT_COUNT, max_lateness=10)
    feed(eng, [proc("ssh a", ts=1000)])
    feed(eng, [proc("ssh b", ts=900), proc("ssh c", ts=901)])  # older than 1000 - 60 - 10
    stats = eng.correlations.stats()["7a0c0a00-0000-4000-8000-0000000000ff"]
    assert stats["late_dropped"] == 2
    assert stats["events"] == 1


def test_state_is_bounded_per_correlation():
    eng = correlation(EVENT_COUNT, max_groups=2, max_events=2)
    feed(eng, [proc("ssh", ts=t, user=u) for t, u in [(1, "a"), (2, "b"), (3, "c"), (4, "c"), (5, "c")]])
    stats = eng.correlations.stats()["7a0c0a00-0000-4000-8000-0000000000ff"]
    assert stats["groups"] == 2
    assert stats["events"] <= 4


def test_referenced_rules_do_not_alert_alone_unless_generate():
    eng = correlation(EVENT_COUNT)
    assert [r.alert for r in eng.match(proc("ssh x"))] == [False]
    gen = correlation(EVENT_COUNT + "generate: true\n".replace("generate", "  generate"))
    assert [r.alert for r in gen.match(proc("ssh x"))] == [True]


def test_aliases_map_group_by_per_rule():
    text = """\
title: Net
name: net
logsource: {product: agentwatch, category: network}
detection:
  sel:
    DestinationPort: 4444
  condition: sel
---
title: Tool
name: tool
logsource: {product: agentwatch, category: tool_call}
detection:
  sel:
    tool_name: http_get
  condition: sel
---
title: Tool then connection to the same host
correlation:
  type: temporal
  rules: [tool, net]
  group-by: [host]
  timespan: 1m
  aliases:
    host:
      tool: data.arguments.host
      net: DestinationHostname
"""
    eng = SigmaEngine(rules(text))
    call = event("agent.tool_call", ts=10, data={"tool": {"name": "http_get"}, "arguments": {"host": "evil.example"}})
    conn = event("network.connect", ts=20, data={"dest": {"domain": "EVIL.example", "port": 4444}})
    other = event("network.connect", ts=15, data={"dest": {"domain": "good.example", "port": 4444}})
    assert feed(eng, [call, other]) == []
    assert feed(eng, [conn]) == [("Tool then connection to the same host", [10, 20])]


def test_unknown_referenced_rule_is_reported():
    text = "title: Lonely\ncorrelation:\n  type: event_count\n  rules: [missing_rule]\n  group-by: [User]\n"
    text += "  timespan: 1m\n  condition: {gte: 2}\n"
    eng = SigmaEngine(rules(text))
    assert any("missing_rule" in p.reason for p in eng.problems)


def test_long_group_by_values_are_kept_as_digests_and_still_group():
    """A user name a megabyte long: a thousand groups must not keep a gigabyte, and two long
    names that differ only at the end are two groups."""
    import tracemalloc

    eng = correlation(EVENT_COUNT)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50):
            feed(eng, [proc("ssh", ts=i, user="u" * 1_000_000 + str(i))])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 5_000_000  # fifty digests and slim events, not 50 MB of names
    alice = "a" * 1_000_000
    assert feed(eng, [proc("ssh", ts=100, user=alice + "1"), proc("ssh", ts=101, user=alice + "2")]) == []
    assert feed(eng, [proc("ssh", ts=102, user=alice + "1"), proc("ssh", ts=103, user=alice + "1")]) == [
        ("Correlated", [100, 102, 103])
    ]
