"""Session rules keep their event-time windows when an event arrives late.

An SDK replays its spill file after an outage, and a resend may come after newer events: an
old event arriving late must neither wipe what the window already holds nor be left out of
the window it belongs to.
"""

from __future__ import annotations

import itertools

from tests.sessions.aop import ev

_SETTLE = itertools.count(1)


def post(c, events) -> None:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def alert_types(c, session: str) -> list[str]:
    # alerts are published once their batch committed: one more committed batch means they are in
    post(c, [ev("zz-late-settle", next(_SETTLE), "session.heartbeat", agent="settle")])
    return [a["type"] for a in c.get(f"/sessions/{session}").json()["alerts"]]


def call(session: str, seq: int, at: float) -> dict:
    return ev(session, seq, "operation.tool_start", {"tool": "search", "input": {"q": "same"}}, at=at)


def test_a_late_old_call_does_not_wipe_the_loop_window(shared_server):
    with shared_server.client() as c:
        post(c, [call("loop-wiped", n, 100 + n) for n in range(1, 5)])  # four calls at 101..104
        post(c, [call("loop-wiped", 50, 0)])  # a replayed call from long before
        post(c, [call("loop-wiped", 5, 105)])  # the fifth call within 60 s
        assert alert_types(c, "loop-wiped") == ["loop"]


def test_a_late_call_inside_the_window_completes_the_loop(shared_server):
    with shared_server.client() as c:
        post(c, [call("loop-late", n, at) for n, at in [(1, 100), (3, 102), (4, 103), (5, 104)]])
        assert alert_types(c, "loop-late") == []
        post(c, [call("loop-late", 2, 101)])  # the missing one, arriving last: five calls in 4 s
        assert alert_types(c, "loop-late") == ["loop"]


def test_a_late_call_outside_every_window_fires_nothing(shared_server):
    with shared_server.client() as c:
        post(c, [call("loop-apart", n, 100 + n) for n in range(1, 5)])
        post(c, [call("loop-apart", 9, 40)])  # 61 s before the first of them
        assert alert_types(c, "loop-apart") == []


def fail(session: str, at: float, agent: str) -> dict:
    return ev(session, 1, "operation.tool_end", {"tool": "deploy", "success": False}, agent=agent, at=at)


def test_a_late_old_failure_does_not_wipe_the_cross_session_window(shared_server):
    with shared_server.client() as c:
        post(c, [fail("xs-1", 5000, "late-builder"), fail("xs-2", 5001, "late-builder")])
        post(c, [fail("xs-0", 0, "late-builder")])  # another session's failure, replayed hours late
        post(c, [fail("xs-3", 5002, "late-builder")])
        assert alert_types(c, "xs-3") == ["repeated_tool_failure"]


def test_a_late_failure_inside_the_window_completes_the_cross_session_rule(shared_server):
    with shared_server.client() as c:
        post(c, [fail("xl-1", 5000, "late-deployer"), fail("xl-3", 5100, "late-deployer")])
        post(c, [fail("xl-2", 5050, "late-deployer")])  # third session, arriving last, in between
        assert alert_types(c, "xl-2") == ["repeated_tool_failure"]
