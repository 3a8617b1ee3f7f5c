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
