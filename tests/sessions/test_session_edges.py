"""Session derivation at the edges of what the envelope allows."""

from __future__ import annotations

from tests.sessions.aop import ev


def test_a_step_beyond_32_bits_is_stored_and_capped_not_a_500(shared_server):
    # `step` / `total_steps` are valid up to 2^63-1, the derived column holds 32 bits on PostgreSQL
    events = [
        ev("huge-step", 1, "session.heartbeat", {"step": 2**40}),
        ev("huge-step", 2, "session.ended", {"outcome": "completed", "total_steps": 2**63 - 1}),
    ]
    with shared_server.client() as c:
        for doc in events:
            r = c.post("/events", json=doc)
            assert r.status_code == 200, r.text
        detail = c.get("/sessions/huge-step").json()
    assert [e["payload"] for e in detail["events"]] == [e["payload"] for e in events]  # stored as sent
    assert detail["session"]["total_steps"] == 2**31 - 1
    assert detail["session"]["status"] == "completed"


def test_children_count_is_the_true_count_past_the_listed_children(shared_server):
    # the detail lists the first 1,000 children; the count must not stop there
    kids = [ev(f"kid-{i:04d}", 1, "session.started", {"goal": "sub"}, parent="many-kids") for i in range(1003)]
    with shared_server.client() as c:
        assert c.post("/events", json=[ev("many-kids", 1, "session.started", {"goal": "root"})]).status_code == 200
        for i in range(0, len(kids), 500):
            r = c.post("/events", json=kids[i : i + 500])
            assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        detail = c.get("/sessions/many-kids").json()
        listed = c.get("/sessions", params={"parent": "many-kids", "limit": 1000, "offset": 1000}).json()
    assert len(detail["children"]) == 1000
    assert detail["session"]["children_count"] == 1003
    assert listed["total"] == 1003 and len(listed["sessions"]) == 3
