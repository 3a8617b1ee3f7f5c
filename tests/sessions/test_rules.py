"""Golden tests of the session rules: just below each threshold nothing fires, at it the alert does."""

from __future__ import annotations

import time

import pytest

from agentwatch.config import Settings
from tests.sessions.aop import ev
from tests.support.server import run_server


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": False},
        aop={"stall_after_s": 0.8, "stall_check_interval_s": 0.1},
    )


def post(c, events):
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


_SETTLE = iter(range(1, 1_000_000))


def settle(c):
    """Alerts are recorded right after a batch commits; one more committed batch means they are in."""
    post(c, [ev("zz-settle", next(_SETTLE), "session.heartbeat", agent="settle")])


def alert_types(c, session):
    settle(c)
    return [a["type"] for a in c.get(f"/sessions/{session}").json()["alerts"]]


def tool_starts(session, inputs, times):
    return [
        ev(session, i + 1, "operation.tool_start", {"tool": "search", "input": {"q": q}}, at=t)
        for i, (q, t) in enumerate(zip(inputs, times, strict=True))
    ]


def test_loop_needs_five_calls_in_sixty_seconds_with_forty_percent_repeats(shared_server):
    with shared_server.client() as c:
        post(c, tool_starts("four", ["a"] * 4, [0, 1, 2, 3]))
        post(c, tool_starts("five", ["a"] * 5, [0, 1, 2, 3, 4]))
        post(c, tool_starts("distinct", ["a", "b", "c", "d", "e"], [0, 1, 2, 3, 4]))
        post(c, tool_starts("ratio20", ["a", "a", "b", "c", "d"], [0, 1, 2, 3, 4]))  # 1 - 4/5 = 20 %
        post(c, tool_starts("ratio40", ["a", "a", "a", "b", "c"], [0, 1, 2, 3, 4]))  # 1 - 3/5 = 40 %
        post(c, tool_starts("spread", ["a"] * 5, [0, 15, 30, 45, 60]))  # the first is 60 s old at the fifth
        post(c, tool_starts("inside", ["a"] * 5, [0, 15, 30, 45, 59.9]))
        assert alert_types(c, "four") == []
        assert alert_types(c, "five") == ["loop"]
        assert alert_types(c, "distinct") == []
        assert alert_types(c, "ratio20") == []
        assert alert_types(c, "ratio40") == ["loop"]
        assert alert_types(c, "spread") == []
        assert alert_types(c, "inside") == ["loop"]
        settle(c)
        alert = c.get("/sessions/five").json()["alerts"][0]
        assert alert["severity"] == "warning" and '"search" called 5 times' in alert["message"]


def thoughts(session, confidences):
    payloads = [{"content": "hm", "confidence": x} for x in confidences]
    return [ev(session, i + 1, "cognition.thought", p) for i, p in enumerate(payloads)]


def test_confidence_drop_after_three_consecutive_low_thoughts(shared_server):
    with shared_server.client() as c:
        post(c, thoughts("broken", ["low", "low", "high", "low", "low"]))
        post(c, thoughts("three", ["low", "low", "low"]))
        post(c, thoughts("numeric", [0.39, 0.1, 0.0]))
        post(c, thoughts("edge", [0.39, 0.4, 0.1]))  # 0.4 is not below the 0.4 threshold
        post(c, [ev("reasoning", i, "cognition.thought", {"reasoning": "r", "confidence": "low"}) for i in (1, 2, 3)])
        assert alert_types(c, "broken") == []
        assert alert_types(c, "three") == ["confidence_drop"]
        assert alert_types(c, "numeric") == ["confidence_drop"]
        assert alert_types(c, "edge") == []
        assert alert_types(c, "reasoning") == ["confidence_drop"]


def tool_ends(session, outcomes, agent="agent-1", start=1):
    return [
        ev(session, start + i, "operation.tool_end", {"tool": "fetch", "success": ok}, agent=agent)
        for i, ok in enumerate(outcomes)
    ]


def test_error_cascade_is_critical_after_three_consecutive_failures(shared_server):
    with shared_server.client() as c:
        post(c, tool_ends("ec-broken", [False, False, True, False, False], agent="a1"))
        post(c, tool_ends("ec-three", [False, False, False], agent="a2"))
        post(
            c,
            [
                ev("ec-docs", i, "operation.tool_end", {"tool": f"t{i}", "outcome": "failure"}, agent="a3")
                for i in (1, 2, 3)
            ],
        )
        assert alert_types(c, "ec-broken") == []
        assert alert_types(c, "ec-three") == ["error_cascade"]
        assert alert_types(c, "ec-docs") == ["error_cascade"]
        settle(c)
        assert c.get("/sessions/ec-three").json()["alerts"][0]["severity"] == "critical"


def test_rule_state_survives_a_restart(settings):
    # the restart between the posts may take longer than this module's short stall limit
    settings = settings.model_copy(update={"aop": settings.aop.model_copy(update={"stall_after_s": 300.0})})
    with run_server(settings) as srv, srv.client() as c:
        post(c, tool_ends("r", [False, False], agent="solo"))
        assert alert_types(c, "r") == []
    with run_server(settings) as srv, srv.client() as c:
        post(c, tool_ends("r", [False], agent="solo", start=3))
        assert alert_types(c, "r") == ["error_cascade"]


def test_resent_events_do_not_count_twice(shared_server):
    with shared_server.client() as c:
        events = tool_ends("again", [False, False])
        post(c, events)
        post(c, events)  # a retry of the same session steps
        assert alert_types(c, "again") == []


def test_token_and_cost_budgets_per_session(shared_server):
    start = {"goal": "g", "token_budget": 1000, "cost_budget_usd": 0.5}
    with shared_server.client() as c:
        post(
            c,
            [
                ev("at", 1, "session.started", start),
                ev("at", 2, "session.heartbeat", {"total_tokens": 1000}),
                ev("at", 3, "cognition.thought", {"content": "x", "cost_usd": 0.25}),
                ev("at", 4, "cognition.thought", {"content": "x", "cost_usd": 0.25}),
            ],
        )
        assert alert_types(c, "at") == []  # exactly at the budget is not over it
        post(
            c,
            [
                ev("at", 5, "session.heartbeat", {"token_spend": 1001}),
                ev("at", 6, "operation.tool_end", {"tool": "llm", "success": True, "cost_usd": 0.01}),
            ],
        )
        assert sorted(alert_types(c, "at")) == ["cost_budget", "token_budget"]
        s = c.get("/sessions/at").json()["session"]
        assert s["total_tokens"] == 1001 and s["total_cost_usd"] == pytest.approx(0.51)
        # the default budget (1,000,000 tokens) applies without a per-session one
        post(c, [ev("dflt", 1, "session.heartbeat", {"total_tokens": 1_000_001})])
        assert alert_types(c, "dflt") == ["token_budget"]


def test_same_tool_failing_across_sessions_of_one_agent(shared_server):
    def fail(session, agent, seq=1):
        return ev(session, seq, "operation.tool_end", {"tool": "deploy", "success": False}, agent=agent)

    with shared_server.client() as c:
        post(c, [fail("x1", "builder"), fail("x2", "builder")])
        post(c, [fail("y1", "other"), fail("y2", "another")])
        assert "repeated_tool_failure" not in alert_types(c, "x2")
        post(c, [fail("y3", "third")])
        assert "repeated_tool_failure" not in alert_types(c, "y3")  # three agents, one session each
        post(c, [fail("x3", "builder")])
        assert alert_types(c, "x3") == ["repeated_tool_failure"]
        settle(c)
        alert = c.get("/sessions/x3").json()["alerts"][0]
        assert '"deploy" failed in 3 different sessions of agent "builder"' in alert["message"]


def test_stall_marks_a_silent_session_timeout_and_alerts(server):
    with server.client() as c:
        post(c, [ev("quiet", 1, "session.started", {"goal": "g"})])
        post(c, [ev("done", 1, "session.started"), ev("done", 2, "session.ended", {"outcome": "completed"})])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            post(c, [ev("busy", int(time.monotonic() * 1000), "session.heartbeat")])
            quiet = c.get("/sessions/quiet").json()
            if quiet["session"]["status"] == "timeout" and quiet["alerts"]:
                break
            time.sleep(0.1)
        quiet = c.get("/sessions/quiet").json()
        assert quiet["session"]["status"] == "timeout"
        assert [a["type"] for a in quiet["alerts"]] == ["stall"]
        assert c.get("/sessions/busy").json()["session"]["status"] == "running"  # active: not stalled
        assert c.get("/sessions/done").json()["session"]["status"] == "completed"  # ended: never stalls
        # a timed-out session that speaks again is running again
        post(c, [ev("quiet", 2, "cognition.thought", {"content": "back"})])
        assert c.get("/sessions/quiet").json()["session"]["status"] == "running"


def test_rule_state_commits_with_its_events_or_not_at_all(settings):
    """The rules write their state in the events' transaction: when that transaction fails,
    neither the state nor a finding survives, and the retry counts every event once."""
    import orjson
    from sqlalchemy import func, select

    from agentwatch.app import Agentwatch
    from agentwatch.sessions.schema import aop_rule_state
    from agentwatch.store import events as event_store

    aw = Agentwatch(settings)
    try:
        rules = aw.aop_rules
        body = b"\n".join(orjson.dumps(e) for e in tool_ends("atomic", [False, False, False], agent="solo"))
        events = aw.codecs["aop"].decode(body, "application/x-ndjson").events

        def failing(_conn, _fresh):
            raise RuntimeError("the store refused the batch")

        with pytest.raises(RuntimeError):
            event_store.commit_batch(aw.engine, events, [rules.in_commit, failing])
        with aw.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(aop_rule_state)).scalar_one() == 0
        assert rules.detect(events) == []  # no finding from a batch that was not stored
        assert event_store.count(aw.engine) == 0

        stored = event_store.commit_batch(aw.engine, events, [rules.in_commit])
        assert len(stored) == 3
        assert [f.rule_id for f in rules.detect(stored)] == ["aop.error_cascade"]  # three failures, counted once
        with aw.engine.connect() as conn:
            scopes = set(conn.execute(select(aop_rule_state.c.scope)).scalars())
        assert scopes == {"session:atomic", "agent:solo"}
    finally:
        aw.engine.dispose()
