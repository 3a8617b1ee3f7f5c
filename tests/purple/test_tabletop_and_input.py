"""Tabletop sessions and their ordered steps, the bounds of both, and bad input to the
execution routes named by field, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.purple.tabletop import MAX_STEPS
from tests.purple.helpers import BASE, purple_settings
from tests.support.server import RunningServer, run_server

TABLETOP = f"{BASE}/tabletop"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(purple_settings(tmp_path_factory.mktemp("data"), module_database_url)) as s:
        yield s


def test_a_session_keeps_its_steps_in_the_order_they_were_added(srv: RunningServer) -> None:
    with srv.client() as c:
        made = c.post(
            TABLETOP,
            json={
                "title": "Poisoned MCP server",
                "scenario": "A weather MCP server changes its tool description overnight.",
                "participants": ["red: mallory", "blue: alice", "red: mallory"],
            },
        )
        assert made.status_code == 201, made.text
        session = made.json()
        assert session["participants"] == ["red: mallory", "blue: alice"]  # once each
        assert session["step_count"] == 0
        steps = [
            {"actor": "red: mallory", "action": "Publish the new description", "expected_detection": "AW-MCP-001"},
            {"actor": "blue: alice", "action": "Triage the alert", "notes": "check the previous digest"},
            {"actor": "red: mallory", "action": "Exfiltrate .env through the city argument"},
        ]
        for i, step in enumerate(steps, start=1):
            r = c.post(f"{TABLETOP}/{session['id']}/steps", json=step)
            assert r.status_code == 201, r.text
            assert r.json()["position"] == i
        doc = c.get(f"{TABLETOP}/{session['id']}").json()
        assert [s["action"] for s in doc["steps"]] == [s["action"] for s in steps]
        assert [s["expected_detection"] for s in doc["steps"]] == ["AW-MCP-001", "", ""]
        assert doc["steps"][1]["notes"] == "check the previous digest"
        listed = c.get(TABLETOP, params={"limit": 1}).json()
        assert listed["sessions"][0]["id"] == session["id"] and listed["sessions"][0]["step_count"] == 3
        assert "steps" not in listed["sessions"][0]


def test_a_session_holds_at_most_max_steps(srv: RunningServer) -> None:
    with srv.client() as c:
        sid = c.post(TABLETOP, json={"title": "Long drill", "scenario": "Many steps"}).json()["id"]
        for _ in range(MAX_STEPS):
            assert c.post(f"{TABLETOP}/{sid}/steps", json={"actor": "red", "action": "step"}).status_code == 201
        over = c.post(f"{TABLETOP}/{sid}/steps", json={"actor": "red", "action": "one too many"})
        assert over.status_code == 409 and f"at most {MAX_STEPS} steps" in over.json()["error"]["message"]
        assert c.get(f"{TABLETOP}/{sid}").json()["step_count"] == MAX_STEPS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scenario": "s"}, "title"),
        ({"title": "   ", "scenario": "s"}, "title"),
        ({"title": "t" * 201, "scenario": "s"}, "title"),
        ({"title": "t", "scenario": ""}, "scenario"),
        ({"title": "t", "scenario": "a\x00b"}, "scenario"),
        ({"title": "t", "scenario": "s", "participants": ["bob\n"]}, "participants.0"),
        ({"title": "t", "scenario": "s", "participants": ["p"] * 51}, "participants"),
        ({"title": "t", "scenario": "s", "owner": "x"}, "owner"),
    ],
)
def test_bad_sessions_are_refused_naming_the_field(srv: RunningServer, body: dict, field: str) -> None:
    with srv.client() as c:
        r = c.post(TABLETOP, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"{field}:")


def test_bad_steps_are_refused_naming_the_field(srv: RunningServer) -> None:
    with srv.client() as c:
        sid = c.post(TABLETOP, json={"title": "Drill", "scenario": "s"}).json()["id"]
        for body, field in [
            ({"action": "a"}, "actor"),
            ({"actor": "red", "action": " "}, "action"),
            ({"actor": "red", "action": "a", "expected_detection": "x" * 257}, "expected_detection"),
            ({"actor": "red", "action": "a", "notes": "n" * 4001}, "notes"),
        ]:
            r = c.post(f"{TABLETOP}/{sid}/steps", json=body)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text
        unknown = "00000000-0000-0000-0000-000000000000"
        assert c.post(f"{TABLETOP}/{unknown}/steps", json={"actor": "r", "action": "a"}).status_code == 404
        assert c.get(f"{TABLETOP}/{unknown}").status_code == 404
        r = c.get(f"{TABLETOP}/not-a-uuid")
        assert r.status_code == 400 and "session_id" in r.json()["error"]["message"]


def test_bad_execution_requests_are_refused_naming_the_field(srv: RunningServer) -> None:
    with srv.client() as c:
        for body, field in [
            ({"test_id": "AW-AT-999"}, "test_id"),
            ({"test_id": "T1059"}, "test_id"),
            ({}, "test_id"),
            ({"test_id": "AW-AT-001", "timeout_s": 0}, "timeout_s"),
            ({"test_id": "AW-AT-001", "timeout_s": 301}, "timeout_s"),
            ({"test_id": "AW-AT-001", "wait": True}, "wait"),
        ]:
            r = c.post(f"{BASE}/executions", json=body)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text
        assert c.post(f"{BASE}/executions", content=b"{").status_code == 400
        r = c.get(f"{BASE}/executions/123")
        assert r.status_code == 400 and "execution_id" in r.json()["error"]["message"]
        assert c.get(f"{BASE}/executions/00000000-0000-0000-0000-000000000000").status_code == 404
        assert c.get(f"{BASE}/atomic-tests", params={"technique": "1059"}).status_code == 400
        assert c.get(f"{BASE}/executions", params={"status": "done"}).status_code == 400
        assert c.get(f"{BASE}/executions", params={"cursor": "zz"}).status_code == 400
