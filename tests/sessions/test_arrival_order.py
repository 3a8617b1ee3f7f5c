"""A session derived from the same events is the same whatever order they arrive in.

Agents resend, SDKs replay a spill file after an outage, and a batch is folded in event-time
order while separate requests are folded as they come: none of that may change what the
session says it was.
"""

from __future__ import annotations

import pytest

from tests.sessions.aop import ev

# the fields that depend on the events alone (not on when, or as what id, they were received)
DERIVED = (
    "agent_id",
    "parent_session_id",
    "goal",
    "status",
    "started_at",
    "ended_at",
    "last_event_at",
    "total_steps",
    "total_tokens",
    "total_cost_usd",
    "event_count",
)


def story(sid: str) -> list[dict]:
    """A session that thought before it said it started, failed, then ended again completed."""
    return [
        ev(sid, 1, "cognition.thought", {"content": "warming up", "tokens": 40}, at=5),
        ev(sid, 2, "session.started", {"goal": "summarize"}, at=10),
        ev(sid, 3, "session.heartbeat", {"step": 2, "total_tokens": 100}, at=15),
        ev(sid, 4, "session.ended", {"outcome": "failed", "total_tokens": 120}, at=20),
        ev(sid, 5, "operation.tool_end", {"tool": "retry", "success": True, "tokens": 30}, at=25),
        ev(sid, 6, "session.ended", {"outcome": "completed", "total_tokens": 150}, at=30),
    ]


def post(c, events) -> None:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def derived(c, sid: str) -> dict:
    session = c.get(f"/sessions/{sid}").json()["session"]
    return {k: session[k] for k in DERIVED}


ORDERS = {
    "one-batch": lambda events: [events],
    "in-order": lambda events: [[e] for e in events],
    "reversed": lambda events: [[e] for e in reversed(events)],
    "ends-first": lambda events: [[events[5]], [events[3]], *[[e] for e in events[:3]], [events[4]]],
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_the_same_events_in_any_arrival_order_derive_the_same_session(shared_server, order):
    sid = f"order-{order}"
    with shared_server.client() as c:
        for batch in ORDERS[order](story(sid)):
            post(c, batch)
        got = derived(c, sid)
    assert got == {
        "agent_id": "agent-1",
        "parent_session_id": None,
        "goal": "summarize",
        "status": "completed",  # the last session.ended (event time) is the session's outcome
        "started_at": "2026-04-03T10:00:05Z",  # its first event, whichever arrived first
        "ended_at": "2026-04-03T10:00:30Z",
        "last_event_at": "2026-04-03T10:00:30Z",
        "total_steps": 2,
        "total_tokens": 150,
        "total_cost_usd": None,
        "event_count": 6,
    }


def test_a_late_earlier_end_does_not_replace_the_outcome_or_the_end_time(shared_server):
    with shared_server.client() as c:
        post(c, [ev("late-end", 1, "session.started", at=0), ev("late-end", 9, "session.ended", {"outcome": "failed"})])
        post(c, [ev("late-end", 4, "session.ended", {"outcome": "completed"})])  # a resend of an older end
        session = c.get("/sessions/late-end").json()["session"]
    assert session["status"] == "failed"
    assert session["ended_at"] == "2026-04-03T10:00:09Z"


def test_a_late_heartbeat_after_the_end_keeps_the_outcome_and_counts_its_step(shared_server):
    with shared_server.client() as c:
        post(c, [ev("hb-after", 1, "session.started"), ev("hb-after", 3, "session.ended", {"outcome": "cancelled"})])
        post(c, [ev("hb-after", 2, "session.heartbeat", {"step": 7, "total_tokens": 70})])
        session = c.get("/sessions/hb-after").json()["session"]
    assert session["status"] == "cancelled" and session["ended_at"] == "2026-04-03T10:00:03Z"
    assert session["total_steps"] == 7 and session["total_tokens"] == 70
    assert session["last_event_at"] == "2026-04-03T10:00:03Z"  # the newest event time, not the latest arrival
