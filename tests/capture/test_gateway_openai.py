"""OpenAI through the gateway: chat completions and the Responses API, streamed and not.

Each test checks the bytes the agent gets against the bytes the fake upstream sent, and the
events recorded: usage (from the final stream chunk), tool calls rebuilt from deltas, cost
from the bundle's price table, and the tool result of the next request linked to its call.
"""

from __future__ import annotations

import orjson

from tests.capture.conftest import by_type, wait_events
from tests.capture.fake_upstream import (
    OPENAI_CHAT,
    OPENAI_CHAT_STREAM,
    OPENAI_TEXT_STREAM,
    RESPONSES,
    RESPONSES_STREAM,
)

TOOLS = [{"type": "function", "function": {"name": "read_file", "description": "read a file"}}]
PROVIDER_KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"


def test_chat_completion_bytes_events_cost_and_key_handling(gateway, upstream):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "read /etc/hosts"}], "tools": TOOLS}
    with gateway.client() as c:
        r = c.post(
            "/gateway/openai/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {PROVIDER_KEY}"}
        )
        assert r.status_code == 200
        assert r.content == OPENAI_CHAT
        assert r.headers["openai-processing-ms"] == "12"  # upstream headers are relayed
        # the provider key reached the upstream untouched, the gateway's own headers did not
        sent = upstream.requests[-1]
        assert sent["path"] == "/v1/chat/completions"
        assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
        assert orjson.loads(sent["body"]) == body
        ev = by_type(c, {"ai.request": 1, "ai.response": 1, "agent.tool_call": 1})
        req, resp, call = ev["ai.request"][0], ev["ai.response"][0], ev["agent.tool_call"][0]
        assert req["data"]["model"]["id"] == "gpt-4o"
        assert req["data"]["auth"]["key_prefix"] == "sk-proj-"
        assert req["data"]["auth"]["key_hash"].startswith("sha256:")
        assert req["data"]["tools"] == [{"type": "function", "name": "read_file", "description": "read a file"}]
        assert resp["data"]["status_code"] == 200 and resp["data"]["success"] is True
        assert resp["data"]["finish_reason"] == "tool_calls"
        usage = resp["data"]["usage"]
        # gpt-4o-2024-11-20 is priced as gpt-4o: $0.0025 / 1k input, $0.01 / 1k output
        assert usage["prompt_tokens"] == 1000 and usage["completion_tokens"] == 100
        assert usage["input_cost_usd"] == 0.0025 and usage["output_cost_usd"] == 0.001
        assert usage["total_cost_usd"] == 0.0035
        assert resp["data"]["tool_calls"][0]["arguments"] == {"path": "/etc/hosts"}
        assert call["data"]["call_id"] == "call_read1" and call["data"]["tool"]["name"] == "read_file"
        assert call["data"]["arguments"] == {"path": "/etc/hosts"}
        # linked: response -> request, call -> response, one trace
        assert resp["related_events"] == [{"event_id": req["event_id"], "relationship": "parent"}]
        assert call["related_events"] == [{"event_id": resp["event_id"], "relationship": "caused_by"}]
        traces = {e["trace_context"]["trace_id"] for e in (req, resp, call)}
        assert len(traces) == 1
        # the key itself is nowhere in the store
        raw = c.get("/api/events", params={"limit": 100}).content
        assert PROVIDER_KEY.encode() not in raw and b"ABCDEFGHIJKLMNOP" not in raw


def test_stream_rebuilds_tool_calls_from_deltas_and_takes_usage_from_last_chunk(gateway):
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "go"}],
        "tools": TOOLS,
    }
    with gateway.client() as c:
        with c.stream("POST", "/gateway/openai/v1/chat/completions", json=body) as r:
            chunks = list(r.iter_raw())
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert b"".join(chunks) == b"".join(OPENAI_CHAT_STREAM)
        assert len(chunks) > 1  # relayed as it came, not buffered into one body
        ev = by_type(c, {"ai.response": 1, "agent.tool_call": 2})
        resp = ev["ai.response"][0]["data"]
        assert resp["usage"]["prompt_tokens"] == 2000 and resp["usage"]["completion_tokens"] == 50
        assert resp["usage"]["total_cost_usd"] == round(2000 * 0.0025 / 1000 + 50 * 0.01 / 1000, 8)
        assert resp["finish_reason"] == "tool_calls"
        assert isinstance(resp["time_to_first_token_ms"], int) and resp["time_to_first_token_ms"] >= 0
        assert resp["latency_ms"] >= resp["time_to_first_token_ms"]
        assert [(t["id"], t["name"], t["arguments"]) for t in resp["tool_calls"]] == [
            ("call_s1", "read_file", {"path": "/tmp/a"}),
            ("call_s2", "run_shell", {"cmd": "ls -la"}),
        ]
        calls = {e["data"]["call_id"]: e["data"] for e in ev["agent.tool_call"]}
        assert calls["call_s2"]["tool"] == {"name": "run_shell", "type": "shell"}
        assert calls["call_s2"]["risk_level"] == "high"

        # the agent runs the tools and sends their results in the next request
        follow = {
            "model": "gpt-4o",
            "stream": True,
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_s1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_s1", "content": "file body"},
                {"role": "tool", "tool_call_id": "call_s2", "content": "total 0"},
            ],
        }
        with c.stream("POST", "/gateway/openai/v1/chat/completions", json=follow) as r:
            assert r.read() == b"".join(OPENAI_TEXT_STREAM)
        results = wait_events(c, "agent.tool_result", 2)
        assert {e["data"]["call_id"] for e in results} == {"call_s1", "call_s2"}
        call_events = {e["data"]["call_id"]: e for e in ev["agent.tool_call"]}
        for res in results:
            call = call_events[res["data"]["call_id"]]
            assert res["related_events"] == [{"event_id": call["event_id"], "relationship": "parent"}]
            assert res["trace_context"]["trace_id"] == call["trace_context"]["trace_id"]
            assert res["data"]["tool"]["name"] == call["data"]["tool"]["name"]
        assert {r["data"]["result"] for r in results} == {"file body", "total 0"}
        second = wait_events(c, "ai.request", 2)[-1]
        assert {x["event_id"] for x in results} == {x["event_id"] for x in second["related_events"]}
        # the same history sent again does not produce the results a second time
        with c.stream("POST", "/gateway/openai/v1/chat/completions", json=follow) as r:
            r.read()
        wait_events(c, "ai.request", 3)
        assert len(wait_events(c, "agent.tool_result", 3, timeout=1.0)) == 2


def test_responses_api_plain_and_streamed(gateway):
    with gateway.client() as c:
        r = c.post(
            "/gateway/openai/v1/responses",
            json={"model": "gpt-4o", "input": "weather in Paris?", "instructions": "be brief"},
        )
        assert r.content == RESPONSES
        with c.stream(
            "POST",
            "/gateway/openai/v1/responses",
            json={"model": "gpt-4o", "input": [{"role": "user", "content": "and Rome?"}], "stream": True},
        ) as s:
            assert s.read() == b"".join(RESPONSES_STREAM)
        ev = by_type(c, {"ai.request": 2, "ai.response": 2, "agent.tool_call": 2})
        plain = next(e for e in ev["ai.response"] if e["data"].get("provider_request_id") == "resp_1")["data"]
        assert plain["tool_calls"][0]["id"] == "call_w1" and plain["tool_calls"][0]["arguments"] == {"city": "Paris"}
        assert plain["thinking"] == "need the weather"
        assert plain["usage"]["prompt_tokens"] == 300 and plain["usage"]["completion_tokens"] == 20
        streamed = next(e for e in ev["ai.response"] if e["data"].get("provider_request_id") == "resp_2")["data"]
        assert streamed["tool_calls"][0]["arguments"] == {"city": "Rome"}
        assert streamed["usage"]["total_tokens"] == 110
        first_req = next(e for e in ev["ai.request"] if not e["data"]["streaming"])["data"]
        assert first_req["messages"][0] == {"role": "system", "content": "be brief", "content_length": 8}
        # the function_call_output of the next turn links to the recorded call
        follow = {"model": "gpt-4o", "input": [{"type": "function_call_output", "call_id": "call_w1", "output": "22C"}]}
        c.post("/gateway/openai/v1/responses", json=follow)
        res = wait_events(c, "agent.tool_result", 1)[0]
        assert res["data"]["call_id"] == "call_w1" and res["data"]["result"] == "22C"


def test_upstream_error_is_relayed_and_recorded(gateway):
    with gateway.client() as c:
        r = c.post("/gateway/openai/v1/chat/completions", json={"model": "fail-model", "messages": []})
        assert r.status_code == 404
        assert r.json() == {"error": {"message": "no such model", "type": "invalid_request_error"}}
        resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["success"] is False and resp["status_code"] == 404
        assert resp["error"] == {"type": "invalid_request_error", "message": "no such model"}


def test_openai_compatible_route_and_unknown_route(gateway):
    with gateway.client() as c:
        r = c.post(
            "/gateway/groq/v1/chat/completions",
            json={"model": "llama-3.1-8b-instant", "messages": [{"role": "user", "content": "x"}]},
        )
        assert r.content == OPENAI_CHAT
        req = wait_events(c, "ai.request", 1)[0]
        assert req["data"]["provider"]["name"] == "groq"  # named after the route when the host is not known
        missing = c.post("/gateway/nope/v1/chat/completions", json={})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"].startswith("route: no gateway route named 'nope'")


def test_provider_key_is_not_an_agentwatch_credential(tmp_path, upstream):
    """With authentication on, a loopback agent passes with only its provider key; a bad agentwatch key is refused."""
    from agentwatch.config import Settings
    from tests.capture.conftest import gateway_settings
    from tests.support.server import run_server

    settings = gateway_settings(Settings(data_dir=tmp_path), upstream)
    assert settings.auth.enabled
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with run_server(settings) as srv, srv.client() as c:
        ok = c.post(
            "/gateway/openai/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {PROVIDER_KEY}"}
        )
        assert ok.status_code == 200 and ok.content == OPENAI_CHAT
        assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
        bad = c.post(
            "/gateway/openai/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {PROVIDER_KEY}", "X-Agentwatch-Key": "aw_not_a_real_key"},
        )
        assert bad.status_code == 401
        assert "x-agentwatch-key" not in {k.lower() for k in upstream.requests[-1]["headers"]}


def test_requests_are_attributed_to_the_local_process_that_sent_them(gateway):
    """The gateway finds the sending process from its socket: here, this test process."""
    import os

    with gateway.client() as c:
        c.post("/gateway/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
        req = wait_events(c, "ai.request", 1)[0]
        assert req["process"]["pid"] == os.getpid()
        assert req["process"]["ppid"] == os.getppid()
        assert req["confidence"]["process_attribution"] == "socket_inode"


def test_non_inference_calls_are_relayed_but_not_recorded_as_llm_calls(gateway, upstream):
    with gateway.client() as c:
        r = c.get("/gateway/openai/v1/models", params={"limit": "2"})
        assert r.status_code == 404 and r.content == b'{"error": "not found"}'  # the fake's own answer
        assert upstream.requests[-1]["path"] == "/v1/models" and upstream.requests[-1]["query"] == "limit=2"
        c.post("/gateway/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
        assert len(wait_events(c, "ai.request", 1)) == 1
        assert len(wait_events(c, "ai.request", 2, timeout=1.0)) == 1  # only the chat completion


def test_client_leaving_mid_stream_is_recorded_as_partial(gateway):
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "go"}], "tools": TOOLS}
    with gateway.client() as c:
        with c.stream("POST", "/gateway/openai/v1/chat/completions", json=body) as r:
            first = next(r.iter_raw())
            assert first and OPENAI_CHAT_STREAM[0].startswith(first[: len(OPENAI_CHAT_STREAM[0])])
        # the agent hung up after the first chunk: the exchange is still recorded, as partial
        resp = wait_events(c, "ai.response", 1)[0]
        assert resp["confidence"]["completeness"] == "partial"
        assert "usage" not in resp["data"]
