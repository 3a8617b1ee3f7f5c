"""Live honeytokens found in ingested events (OISP LLM requests, OISP and AOP tool calls):
the touch rows, the ``honeytoken`` alerts and their dedup, and revoked tokens no longer
matching, on a real server on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.detect.helpers import llm_request, tool_call, wait_for
from tests.honeytokens.conftest import TOKENS, create, touches, unique
from tests.sessions.aop import ev
from tests.support.server import RunningServer


def ingest(c: Any, *events: dict[str, Any]) -> None:
    r = c.post("/api/v1/ingest", json=list(events))
    assert r.status_code == 200 and r.json()["stored"] == len(events), r.text


def alert(c: Any, alert_id: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_a_key_in_an_llm_request_is_a_touch_with_a_high_alert(srv: RunningServer) -> None:
    host = f"ht-{unique()}"
    with srv.client() as c:
        key = create(c, name="planted openai key", kind="api_key", location="repo/.env")
        prompt = f"Here is my config:\nOPENAI_API_KEY={key['value']}\nwhy does it fail?"
        ingest(c, llm_request(prompt, host={"hostname": host}, session_id="ht-sess-1"))
        [touch] = wait_for(lambda: touches(c, key["id"]))
        assert (touch["source"], touch["event_type"]) == ("pipeline", "ai.request")
        assert touch["location"] == "data.messages.0.content"
        assert (touch["host"], touch["session_id"], touch["client"]) == (host, "ht-sess-1", None)
        found = alert(c, touch["alert_id"])
        assert (found["type"], found["rule_id"], found["severity"], found["severity_label"]) == (
            "honeytoken",
            "AW-HONEYTOKEN",
            8,
            "high",
        )
        assert found["event_ids"] == [touch["event_id"]]
        assert found["details"]["honeytoken"] == {"id": key["id"], "name": "planted openai key", "kind": "api_key"}
        own = str([found["title"], found["message"], found["details"]])
        assert key["value"][8:] not in own  # the alert names the token, never its value (its events hold it)
        assert "repo/.env" in found["message"]
        assert c.get(f"{TOKENS}/{key['id']}").json()["touches"] == 1


def test_tool_call_arguments_oisp_and_aop_and_one_alert_per_token(srv: RunningServer) -> None:
    session = f"aop-{unique()}"
    with srv.client() as c:
        cred = create(c, name="db password", kind="credential", username="dbadmin")
        password = cred["parts"]["password"]
        ingest(c, tool_call(f"psql -U dbadmin --password={password} -h db"))
        aop = ev(
            session, 1, "operation.tool_start", {"tool": "http", "tool_call_id": "c1", "input": {"auth": password}}
        )
        # now, so both touches fall in one alert's dedup window (it runs on event time)
        aop["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        r = c.post("/events", json=aop)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        found = wait_for(lambda: len(touches(c, cred["id"])) == 2 and touches(c, cred["id"]))
        by_type = {t["event_type"]: t for t in found}
        assert set(by_type) == {"agent.tool_call", "aop.operation.tool_start"}
        assert by_type["agent.tool_call"]["location"] == "data.arguments.command"
        assert by_type["aop.operation.tool_start"]["session_id"] == session
        assert by_type["aop.operation.tool_start"]["agent"] == "agent-1"
        # both touches merged into the one alert of the token
        ids = {t["alert_id"] for t in found}
        assert len(ids) == 1
        assert alert(c, ids.pop())["count"] == 2


def test_one_event_counts_a_token_once_and_finds_several_tokens(srv: RunningServer) -> None:
    with srv.client() as c:
        a = create(c, name="marker a", kind="text")
        b = create(c, name="marker b", kind="text", prefix="Doc")
        ingest(c, llm_request(f"{a['value']} {a['value']} and {b['value']}"))
        wait_for(lambda: touches(c, a["id"]) and touches(c, b["id"]))
        assert len(touches(c, a["id"])) == 1


def test_a_revoked_token_no_longer_matches(srv: RunningServer) -> None:
    with srv.client() as c:
        gone = create(c, name="revoked key", kind="api_key", style="github")
        live = create(c, name="live key", kind="api_key", style="anthropic")
        assert c.delete(f"{TOKENS}/{gone['id']}").status_code == 204
        ingest(c, tool_call(f"echo {gone['value']}"))
        # a later event holding a live token proves the earlier one went through the detector
        ingest(c, tool_call(f"echo {live['value']}"))
        wait_for(lambda: touches(c, live["id"]))
        assert touches(c, gone["id"]) == []
        assert c.get(f"{TOKENS}/{gone['id']}").json()["touches"] == 0


def test_events_list_and_stats(srv: RunningServer) -> None:
    with srv.client() as c:
        before = c.get(f"{TOKENS}/stats").json()
        t = create(c, name="stats marker", kind="text")
        for _ in range(3):
            ingest(c, llm_request(f"marker {t['value']}"))
        wait_for(lambda: len(touches(c, t["id"])) == 3)
        after = c.get(f"{TOKENS}/stats").json()
        assert after["tokens"]["total"] == before["tokens"]["total"] + 1
        assert after["tokens"]["by_kind"]["text"] == before["tokens"]["by_kind"].get("text", 0) + 1
        assert after["events"]["by_source"]["pipeline"] == before["events"]["by_source"]["pipeline"] + 3
        assert after["events"]["last_24h"] == before["events"]["last_24h"] + 3
        assert {"id": t["id"], "name": "stats marker", "kind": "text", "status": "active", "touches": 3} in after["top"]
        page = c.get(f"{TOKENS}/events", params={"token_id": t["id"], "limit": 2}).json()
        assert page["total"] == 3 and len(page["events"]) == 2 and page["next_cursor"]
        rest = c.get(f"{TOKENS}/events", params={"token_id": t["id"], "cursor": page["next_cursor"]}).json()
        assert len(rest["events"]) == 1 and rest["next_cursor"] is None
        assert {e["id"] for e in page["events"] + rest["events"]} == {e["id"] for e in touches(c, t["id"])}
