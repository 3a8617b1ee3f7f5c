"""A session's goal and its budgets do not depend on the order its events arrive in.

The goal is the one ``session.started`` declares, else the earliest ``cognition.goal`` in event
time (sequence breaking a tie). A budget the session declares in a ``session.started`` that
arrives after the default budget already fired governs from then on.
"""

from __future__ import annotations

import time

import orjson
import pytest
from alembic import command
from sqlalchemy import MetaData, Table

from agentwatch.sessions.codec import to_event
from agentwatch.sessions.derive import fold
from agentwatch.sessions.schema import aop_sessions
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import alembic_config, migrate
from tests.sessions.aop import ev

ORDERS = {
    "one-batch": lambda events: [events],
    "in-order": lambda events: [[e] for e in events],
    "reversed": lambda events: [[e] for e in reversed(events)],
}


def post(c, events) -> dict:
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    return r.json()


def goal(c, sid: str) -> str | None:
    return c.get(f"/sessions/{sid}").json()["session"]["goal"]


def goals_story(sid: str) -> list[dict]:
    return [
        ev(sid, 1, "cognition.thought", {"content": "looking around"}, at=1),
        ev(sid, 2, "cognition.goal", {"goal": "first goal"}, at=5),
        ev(sid, 3, "cognition.goal", {"goal": "second goal"}, at=8),
        ev(sid, 4, "cognition.goal", {"content": "third goal"}, at=9),  # the SDK's dialect
    ]


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_the_goal_is_the_earliest_cognition_goal_in_event_time(shared_server, order):
    sid = f"goal-{order}"
    events = goals_story(sid)
    with shared_server.client() as c:
        for batch in ORDERS[order](events):
            post(c, batch)
        assert goal(c, sid) == "first goal"
        # a resend (same sequence) is a duplicate, even with another goal: nothing changes
        assert post(c, [{**events[1], "payload": {"goal": "sent again"}}])["duplicates"] == 1
        post(c, [ev(sid, 9, "cognition.goal", {"goal": "later goal"}, at=20)])
        assert goal(c, sid) == "first goal"


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_at_one_time_the_lower_sequence_gives_the_goal(shared_server, order):
    sid = f"goal-tie-{order}"
    events = [
        ev(sid, 7, "cognition.goal", {"goal": "sequence seven"}, at=3),
        ev(sid, 8, "cognition.goal", {"goal": "sequence eight"}, at=3),
    ]
    with shared_server.client() as c:
        for batch in ORDERS[order](events):
            post(c, batch)
        assert goal(c, sid) == "sequence seven"


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_the_declared_goal_ranks_before_any_cognition_goal(shared_server, order):
    """A session.started's goal is what the session was started to do: it wins over a
    cognition.goal even an earlier one; of two session.started, the earlier in event time."""
    sid = f"goal-declared-{order}"
    events = [
        ev(sid, 1, "cognition.goal", {"goal": "warm up"}, at=1),
        ev(sid, 2, "session.started", {"goal": "declared goal"}, at=2),
        ev(sid, 3, "cognition.goal", {"goal": "sub goal"}, at=3),
        ev(sid, 4, "session.started", {"goal": "restarted goal"}, at=4),  # an SDK restarting the session
        ev(sid, 5, "session.started", {}, at=0),  # declares no goal: not a candidate
    ]
    with shared_server.client() as c:
        for batch in ORDERS[order](events):
            post(c, batch)
        assert goal(c, sid) == "declared goal"


@pytest.mark.blank_database
def test_a_goal_derived_before_its_rank_was_kept_gives_way_only_to_a_declared_one(database_url):
    """A session row written before revision 0201 has a goal of unknown origin: a late
    cognition.goal (even an earlier one) leaves it, a session.started replaces it, as before."""
    engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0200_sessions")
        legacy = {c.name: None for c in aop_sessions.columns if not c.name.startswith("goal_")}
        legacy.update(
            id="legacy",
            agent_id="agent-1",
            goal="legacy goal",
            status="running",
            started_at=100.0,
            last_event_at=100.0,
            last_seen_at=100.0,
            event_count=1,
            event_steps=1,
            reported_steps=0,
            reported_tokens=0.0,
            summed_tokens=0.0,
            max_sequence=5,
        )
        at_0200 = Table("aop_sessions", MetaData(), autoload_with=engine)  # the table as 0200 made it
        assert "goal_rank" not in at_0200.c
        with engine.begin() as conn:
            conn.execute(at_0200.insert().values(legacy))
        migrate(engine)

        def derive(doc: dict) -> dict:
            with engine.begin() as conn:
                [row] = fold(conn, [to_event(doc, orjson.dumps(doc), received_at=time.time())])
                conn.execute(aop_sessions.update().where(aop_sessions.c.id == "legacy").values(row))
            return row

        row = derive(ev("legacy", 1, "cognition.goal", {"goal": "earlier thought"}, at=0))
        assert (row["goal"], row["goal_rank"]) == ("legacy goal", None)
        row = derive(ev("legacy", 9, "session.started", {"goal": "declared goal"}, at=50))
        assert (row["goal"], row["goal_rank"], row["goal_sequence"]) == ("declared goal", 0, 9)
        row = derive(ev("legacy", 2, "session.started", {"goal": "earlier declared"}, at=1))
        assert row["goal"] == "earlier declared"  # ranked now: the earlier declaration wins
    finally:
        engine.dispose()


# -- budgets -------------------------------------------------------------------------


_SETTLE = iter(range(1, 1_000_000))


def budget_alerts(c, sid: str) -> list[dict]:
    post(c, [ev("zz-settle-budget", next(_SETTLE), "session.heartbeat", agent="settle")])  # alerts are in
    return [a for a in c.get(f"/sessions/{sid}").json()["alerts"] if a["type"].endswith("_budget")]


def test_a_late_larger_session_budget_governs_from_when_it_is_known(shared_server):
    sid = "budget-late"
    with shared_server.client() as c:
        # the heartbeat comes first: the default budget (1,000,000 tokens, $10) fires
        post(c, [ev(sid, 2, "session.heartbeat", {"total_tokens": 2_000_000, "total_cost_usd": 11.0}, at=2)])
        [early_cost, early_tokens] = sorted(budget_alerts(c, sid), key=lambda a: a["type"])
        assert early_tokens["message"] == "Session used 2,000,000 tokens, over its budget of 1,000,000"
        assert early_cost["type"] == "cost_budget"

        # then its own, larger budget: the alerts already raised stay, nothing new yet
        post(c, [ev(sid, 1, "session.started", {"token_budget": 5_000_000, "cost_budget_usd": 50}, at=1)])
        assert {a["id"] for a in budget_alerts(c, sid)} == {early_tokens["id"], early_cost["id"]}
        post(c, [ev(sid, 3, "session.heartbeat", {"total_tokens": 5_000_000, "total_cost_usd": 50}, at=3)])
        assert len(budget_alerts(c, sid)) == 2  # at the budget is not over it

        # over its own budget: an alert of its own, naming that budget
        post(c, [ev(sid, 4, "session.heartbeat", {"total_tokens": 5_000_001, "total_cost_usd": 50.5}, at=4)])
        found = budget_alerts(c, sid)
        assert len(found) == 4, found
        late = {a["type"]: a for a in found if a["id"] not in (early_tokens["id"], early_cost["id"])}
        assert late["token_budget"]["message"] == "Session used 5,000,001 tokens, over its budget of 5,000,000"
        assert late["cost_budget"]["message"] == "Session cost $50.5000, over its budget of $50.0000"
        details = c.get(f"/api/v1/alerts/{late['token_budget']['id']}").json()["details"]
        assert (details["budget"], details["budget_from"]) == (5_000_000, "session.started")
        assert c.get(f"/api/v1/alerts/{early_tokens['id']}").json()["details"]["budget_from"] == "aop.token_budget"

        # each budget fires once
        post(c, [ev(sid, 5, "session.heartbeat", {"total_tokens": 9_000_000, "total_cost_usd": 90}, at=5)])
        assert len(budget_alerts(c, sid)) == 4


def test_a_late_smaller_session_budget_does_not_fire_again(shared_server):
    sid = "budget-late-smaller"
    with shared_server.client() as c:
        post(c, [ev(sid, 2, "session.heartbeat", {"total_tokens": 2_000_000}, at=2)])
        post(c, [ev(sid, 1, "session.started", {"token_budget": 1_000}, at=1)])
        post(c, [ev(sid, 3, "session.heartbeat", {"total_tokens": 3_000_000}, at=3)])
        assert [a["type"] for a in budget_alerts(c, sid)] == ["token_budget"]


def test_a_late_session_budget_already_exceeded_fires_on_arrival(shared_server):
    sid = "budget-late-exceeded"
    with shared_server.client() as c:
        post(c, [ev(sid, 2, "session.heartbeat", {"total_tokens": 3_000_000}, at=2)])
        post(c, [ev(sid, 1, "session.started", {"token_budget": 2_500_000}, at=1)])
        found = budget_alerts(c, sid)
    assert [a["message"] for a in found] == [
        "Session used 3,000,000 tokens, over its budget of 1,000,000",
        "Session used 3,000,000 tokens, over its budget of 2,500,000",
    ]


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_the_budget_of_the_first_start_in_event_time_governs(shared_server, order):
    """A session that reports two starts (a resumed agent, say) has the budgets of the first in
    event time, as it has its goal, whatever order they arrive in."""
    sid = f"budget-two-starts-{order}"
    story = [
        ev(sid, 1, "session.started", {"token_budget": 2_000_000}, at=1),
        ev(sid, 2, "session.started", {"token_budget": 9_000_000}, at=2),
    ]
    with shared_server.client() as c:
        for batch in ORDERS[order](story):
            post(c, batch)
        post(c, [ev(sid, 3, "session.heartbeat", {"total_tokens": 3_000_000}, at=3)])
        found = budget_alerts(c, sid)
    assert [a["message"] for a in found] == ["Session used 3,000,000 tokens, over its budget of 2,000,000"]
