"""DELETE /sessions/{id}: the session goes everywhere, also from the rules' per-agent history,
and a delete that lands while a batch of that session is being committed waits for it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import orjson
import psycopg
import pytest
from sqlalchemy import func, select

from agentwatch.config import Settings
from agentwatch.sessions.schema import aop_rule_state, aop_sessions
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import events
from agentwatch.store.writer_turns import writer_turn
from tests.sessions.aop import ev
from tests.support.server import open_settings, run_server


@pytest.fixture
def settings(tmp_path, database_url):
    return open_settings(tmp_path, database_url)


def post(c, batch):
    r = c.post("/events", json=batch)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def fail(session, seq, agent="builder", parent=None):
    return ev(session, seq, "operation.tool_end", {"tool": "deploy", "success": False}, agent=agent, parent=parent)


_SETTLE = iter(range(1, 1_000_000))


def settle(c):
    """Findings become alerts right after their batch commits: once a later batch is committed, they are in."""
    post(c, [ev("zz-settle", next(_SETTLE), "session.heartbeat", agent="settle")])


def rule_states(srv) -> dict[str, dict]:
    with srv.aw.engine.connect() as conn:
        return {r.scope: orjson.loads(r.state) for r in conn.execute(select(aop_rule_state))}


def failed_in(state: dict, tool: str = "deploy") -> list[str]:
    """The sessions an agent-scope state lists as failures of ``tool``."""
    return [sid for _ts, sid in state.get("fail", {}).get(tool, [])]


def stored(srv, session_id) -> dict[str, int]:
    """Rows the store still holds for a session."""
    with srv.aw.engine.connect() as conn:

        def count(table, cond):
            return conn.execute(select(func.count()).select_from(table).where(cond)).scalar_one()

        return {
            "events": count(events, events.c.session_id == session_id),
            "alerts": count(alerts, alerts.c.session_id == session_id),
            "sessions": count(aop_sessions, aop_sessions.c.id == session_id),
            "rule_states": count(aop_rule_state, aop_rule_state.c.scope == f"session:{session_id}"),
        }


def request(srv, method: str, path: str, **kw):
    """One request on a client of its own (for a request made from another thread)."""
    with srv.client() as c:
        return c.request(method, path, **kw)


def alert_types(c, session):
    settle(c)
    return [a["type"] for a in c.get(f"/sessions/{session}").json()["alerts"]]


def test_a_deleted_session_leaves_the_agents_tool_failure_history(server):
    """The repeated-tool-failure rule needs the tool to fail in 3 sessions of one agent: a
    deleted session is no longer one of them, in the store or in the running server."""
    with server.client() as c:
        post(c, [fail("x1", 1), fail("x2", 1)])
        assert failed_in(rule_states(server)["agent:builder"]) == ["x1", "x2"]
        r = c.delete("/sessions/x1")
        assert r.status_code == 200 and r.json()["deleted"]["session_ids"] == ["x1"]
        states = rule_states(server)
        assert "session:x1" not in states and "session:x2" in states
        assert failed_in(states["agent:builder"]) == ["x2"]
        # x2 and x3 are two sessions: no alert; x4 makes three
        post(c, [fail("x3", 1)])
        assert alert_types(c, "x3") == []
        post(c, [fail("x4", 1)])
        assert alert_types(c, "x4") == ["repeated_tool_failure"]
        alert = c.get("/sessions/x4").json()["alerts"][0]
        assert '"deploy" failed in 3 different sessions of agent "builder"' in alert["message"]


def test_a_recursive_delete_leaves_no_descendant_in_the_agents_history(server):
    with server.client() as c:
        post(c, [fail("root", 1), fail("kid", 1, agent="helper", parent="root")])
        post(c, [fail("other", 1, agent="helper")])
        r = c.delete("/sessions/root", params={"recursive": "true"})
        assert sorted(r.json()["deleted"]["session_ids"]) == ["kid", "root"]
        states = rule_states(server)
        assert failed_in(states["agent:builder"]) == []
        assert failed_in(states["agent:helper"]) == ["other"]
        assert not {"session:root", "session:kid"} & set(states)


@contextmanager
def commits_held(srv, database_url: str) -> Iterator[Callable[[], None]]:
    """Keep the pipeline's next commit in flight until the block ends; yields a call that
    returns once that commit is held.

    PostgreSQL: an exclusive lock on ``aop_rule_state`` stops the commit after it stored the
    events and upserted the session row (the rules write their state last). SQLite: the test's
    write transaction stops it at its first INSERT, with the worker inside its commit."""
    if database_url.startswith("postgresql"):
        with psycopg.connect(database_url, autocommit=False) as lock:
            lock.execute("LOCK TABLE aop_rule_state IN ACCESS EXCLUSIVE MODE")

            def held() -> None:
                sql = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'aop_rule_state'::regclass"
                deadline = time.monotonic() + 10
                while lock.execute(sql).fetchone()[0] == 0:
                    assert time.monotonic() < deadline, "the commit never reached the rule state"
                    time.sleep(0.01)

            try:
                yield held
            finally:
                lock.rollback()
        return
    path = database_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None, timeout=10)
    lock.execute("BEGIN IMMEDIATE")

    def held() -> None:
        deadline = time.monotonic() + 10
        while srv.aw.pipeline.pending == 0 or not srv.aw.pipeline.commit_lock.locked():
            assert time.monotonic() < deadline, "the batch never reached the commit"
            time.sleep(0.01)

    try:
        yield held
    finally:
        lock.execute("ROLLBACK")
        lock.close()


def test_a_delete_during_a_commit_of_that_session_removes_what_the_commit_stored(server, database_url):
    """The batch was accepted before the DELETE: the delete waits for its commit and then removes
    its events, its alert and its rule state too; nothing of the session comes back afterwards."""
    before = [ev("racy", 1, "session.started", {"token_budget": 100}, agent="builder"), fail("racy", 2)]
    during = [fail("racy", 3), ev("racy", 4, "session.heartbeat", {"total_tokens": 500}, agent="builder")]
    with server.client() as c:
        post(c, before)
        assert stored(server, "racy")["events"] == 2
        with ThreadPoolExecutor(2) as pool:
            with commits_held(server, database_url) as held:
                posting = pool.submit(request, server, "POST", "/events", json=during)
                held()
                deleting = pool.submit(request, server, "DELETE", "/sessions/racy")
                # Time for a delete that goes straight to the store to block there. On SQLite a short
                # one: released soon after, the delete's busy handler (polling every few ms) gets the
                # write lock before the commit's (every 100 ms by now), as it did before the fix.
                time.sleep(0.5 if database_url.startswith("postgresql") else 0.05)
                assert not posting.done() and not deleting.done()
            assert posting.result(timeout=30).status_code == 200
            r = deleting.result(timeout=30)
        assert r.status_code == 200, r.text
        # two events before, two in the commit, and the token-budget alert the commit raised
        assert r.json()["deleted"] == {"sessions": 1, "events": 4, "alerts": 1, "session_ids": ["racy"]}
        settle(c)
        assert stored(server, "racy") == {"events": 0, "alerts": 0, "sessions": 0, "rule_states": 0}
        assert failed_in(rule_states(server)["agent:builder"]) == []
        assert c.get("/sessions/racy").status_code == 404
        # a later event starts a new session: nothing counted before the delete is carried over
        post(c, [fail("racy", 1)])
        assert alert_types(c, "racy") == []  # one failure, not the third in a row
        session = c.get("/sessions/racy").json()["session"]
        assert session["event_count"] == 1 and session["total_tokens"] == 0
        assert stored(server, "racy") == {"events": 1, "alerts": 0, "sessions": 1, "rule_states": 1}
        assert failed_in(rule_states(server)["agent:builder"]) == ["racy"]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_delete_during_a_stall_pass_removes_the_stall_alert(tmp_path, database_url):
    """A stall pass marks the session and then records its alert: a delete in between must not
    leave that alert behind. A lock on ``alerts`` holds the pass after it marked the session."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        aop={"stall_after_s": 0.3, "stall_check_interval_s": 0.1},
    )
    with run_server(settings) as srv, srv.client() as c, ThreadPoolExecutor(1) as pool:
        with psycopg.connect(database_url, autocommit=False) as lock:
            lock.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
            post(c, [ev("quiet", 1, "session.started", {"goal": "g"})])
            sql = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'alerts'::regclass"
            deadline = time.monotonic() + 10

            def marked() -> bool:  # the pass marked the session (committed) and waits to record its alert
                with srv.aw.engine.connect() as conn:
                    status = conn.execute(select(aop_sessions.c.status)).scalar_one()
                return status == "timeout" and lock.execute(sql).fetchone()[0] > 0

            # another background reader of alerts may wait on the lock too: the session's mark is
            # what says the stall pass is the one waiting
            while not marked():
                assert time.monotonic() < deadline, "no stall pass reached the alerts"
                time.sleep(0.01)
            deleting = pool.submit(request, srv, "DELETE", "/sessions/quiet")
            time.sleep(0.5)
            assert not deleting.done()
            lock.rollback()
        r = deleting.result(timeout=30)
        assert r.json()["deleted"] == {"sessions": 1, "events": 1, "alerts": 1, "session_ids": ["quiet"]}
        time.sleep(0.3)  # a stall pass after the delete finds nothing more to record
        assert stored(srv, "quiet") == {"events": 0, "alerts": 0, "sessions": 0, "rule_states": 0}


def test_a_delete_takes_the_sessions_events_out_of_the_running_totals(server):
    with server.client() as c:
        post(c, [ev("gone", 1, "session.started"), ev("gone", 2, "cognition.thought"), fail("gone", 3)])
        post(c, [ev("kept", 1, "session.started"), ev("kept", 2, "cognition.thought")])
        assert c.delete("/sessions/gone").status_code == 200
        stats = c.get("/api/stats").json()["events"]
        assert stats["by_type"] == {"aop.session.started": 1, "aop.cognition.thought": 1}
        assert stats["total"] == c.get("/api/events").json()["total"] == 2
        assert c.get("/api/v1/stats").json()["events"]["by_type"] == stats["by_type"]


def test_a_deleted_sessions_alerts_take_their_feedback_and_explanations_with_them(server):
    """The alerts of a deleted session go with it, and so does what refers to them: their
    TP/FP feedback rows and their cached LLM explanations (no rows left pointing at nothing)."""
    from agentwatch.alerts.explanation_cache import cache_key
    from agentwatch.detect.schema import alert_feedback
    from agentwatch.store import kv

    with server.client() as c:
        post(c, [fail("fb1", 1), fail("fb1", 2), fail("fb1", 3)])  # three failures in a row: error_cascade
        assert alert_types(c, "fb1") == ["error_cascade"]
        alert_id = c.get("/sessions/fb1").json()["alerts"][0]["id"]
        r = c.post(f"/api/v1/alerts/{alert_id}/feedback", json={"feedback": "tp", "note": "seen"})
        assert r.status_code in (200, 201, 204), r.text
        kv.put(server.aw.engine, cache_key(alert_id), {"explanation": "kept for the test"})
        kv.put(server.aw.engine, cache_key("another-alert"), {"explanation": "not this session's"})

        def feedback_rows() -> int:
            with server.aw.engine.connect() as conn:
                cond = alert_feedback.c.alert_id == alert_id
                return conn.execute(select(func.count()).select_from(alert_feedback).where(cond)).scalar_one()

        assert feedback_rows() == 1
        assert c.delete("/sessions/fb1").status_code == 200
    assert stored(server, "fb1")["alerts"] == 0
    assert feedback_rows() == 0
    assert kv.get(server.aw.engine, cache_key(alert_id)) is None
    assert kv.get(server.aw.engine, cache_key("another-alert")) == {"explanation": "not this session's"}


def test_a_verdict_given_while_its_session_is_being_deleted_is_not_left_behind(server):
    """A TP/FP verdict on one of the session's alerts, arriving while the session is being
    deleted, waits for the deletion and then finds the alert gone (404), leaving no row."""
    import threading

    from agentwatch.detect import queries as alert_queries
    from agentwatch.detect.schema import alert_feedback
    from agentwatch.sessions.queries import delete_sessions

    with server.client() as c:
        post(c, [fail("race1", 1), fail("race1", 2), fail("race1", 3)])
        assert alert_types(c, "race1") == ["error_cascade"]
        alert_id = c.get("/sessions/race1").json()["alerts"][0]["id"]
    engine = server.aw.engine
    verdict: list[bool] = []
    with engine.begin() as conn:  # the session's deletion, between its statements and its commit
        delete_sessions(conn, ["race1"])
        late = threading.Thread(
            target=lambda: verdict.append(alert_queries.add_feedback(engine, alert_id, "tp", "", "t", ""))
        )
        late.start()
        late.join(1.0)  # it waits for the deletion (or, unguarded, has already written its row)
    late.join(10)
    assert verdict == [False]
    with engine.connect() as conn:
        assert conn.execute(select(alert_feedback.c.id).where(alert_feedback.c.alert_id == alert_id)).all() == []


def test_the_alerts_of_a_deleted_session_are_pushed_as_deleted_to_live_clients(server):
    import json

    from websockets.sync.client import connect

    with server.client() as c:
        post(c, [fail("p1", 1), fail("p2", 1), fail("p3", 1)])
        settle(c)
        (alert,) = c.get("/sessions/p3").json()["alerts"]
        with connect(server.ws_url + "/api/v1/ws") as ws:
            assert c.delete("/sessions/p3").status_code == 200
            deadline = time.monotonic() + 10
            seen = []
            while time.monotonic() < deadline and alert["id"] not in seen:
                frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
                if frame["type"] == "alert_deleted":
                    seen.append(frame["alert_id"])
        assert seen == [alert["id"]]
        assert "alert_ids" not in c.delete("/sessions/p2").json()  # the answer is as before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_delete_waits_for_the_writer_turn_another_process_holds(server, database_url):
    """Another process's pipeline commit holds the writers' turn: the delete writes after it."""
    with server.client() as c:
        post(c, [ev("turn", 1, "session.started", agent="builder")])
        with ThreadPoolExecutor(1) as pool:
            with writer_turn(database_url.removeprefix("sqlite:///")):
                deleting = pool.submit(request, server, "DELETE", "/sessions/turn")
                time.sleep(0.5)
                assert not deleting.done()  # waiting for the turn
                assert stored(server, "turn")["events"] == 1
            r = deleting.result(timeout=30)
        assert r.status_code == 200, r.text
        assert stored(server, "turn") == {"events": 0, "alerts": 0, "sessions": 0, "rule_states": 0}
