"""Defect hunt on the eval replay: a proposed rule that matches every stored event of a large
window must not hold every matched event in memory (events may be up to 1 MB each and the
window up to ``proposals.max_window_events``); its numbers must stay exact all the same."""

from __future__ import annotations

import time
import tracemalloc
import uuid

from agentwatch.detect.proposals.replay import replay_window
from tests.detect.helpers import wait_for

EVENTS = 600
PAYLOAD = 24_000  # characters of each event's tool argument: ~14 MB of event bodies in all


def test_a_rule_matching_every_event_keeps_memory_bounded_and_counts_exact(srv):
    tag = uuid.uuid4().hex
    with srv.client() as c:
        for start in range(0, EVENTS, 50):
            batch = [
                {
                    "event_type": "agent.tool_call",
                    "host": {"hostname": f"replay-{tag}-{i % 7}"},
                    "data": {"tool": {"name": f"t-{tag}", "type": "shell"}, "arguments": {"x": "y" * PAYLOAD}},
                }
                for i in range(start, start + 50)
            ]
            assert c.post("/api/v1/ingest", json=batch).status_code in (200, 202)
        wait_for(lambda: c.get("/api/v1/events", params={"limit": 1}).status_code == 200)
    now = time.time()
    db = srv.aw.engine

    def everything(event: object) -> bool:
        return True

    wait_for(lambda: replay_window(db, everything, now - 600, now + 300, 10_000).events_read >= EVENTS, 30)
    tracemalloc.start()
    try:
        run = replay_window(db, everything, now - 600, now + 300, 10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    doc = run.as_json()
    assert doc["events_read"] == EVENTS and doc["events_hit"] == EVENTS and doc["truncated"] is False
    hosts = {e["value"]: e["events"] for e in doc["top_entities"] if e["type"] == "host"}
    # 600 = 7 * 85 + 5: hosts 0-4 (i % 7 below 5) get 86 events each, hosts 5 and 6 get 85
    assert sorted(hosts.values()) == [85, 85, 86, 86, 86, 86, 86]
    assert len(doc["sample_event_ids"]) == 20
    assert peak < 8_000_000, f"replay peaked at {peak:,} bytes for ~14 MB of matched events"
