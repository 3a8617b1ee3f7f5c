"""Anthropic, Gemini and Ollama through the gateway, streamed and not: bytes, usage, tool calls, thinking."""

from __future__ import annotations

from tests.capture.conftest import by_type, wait_events
from tests.capture.fake_upstream import (
    ANTHROPIC,
    ANTHROPIC_STREAM,
    GEMINI,
    GEMINI_STREAM,
    OLLAMA,
    OLLAMA_STREAM,
)

ANTHROPIC_KEY = "sk-ant-api03-QWERTYUIOPASDFGHJKLZXCVBNM"


def test_anthropic_messages(gateway, upstream):
    body = {
        "model": "claude-3-5-sonnet-20241022",
        "max_tokens": 256,
        "system": "you are careful",
        "messages": [{"role": "user", "content": "read /etc/passwd"}],
        "tools": [{"name": "read_file", "description": "read", "input_schema": {"type": "object"}}],
    }
    headers = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    with gateway.client() as c:
        r = c.post("/gateway/anthropic/v1/messages", json=body, headers=headers)
        assert r.content == ANTHROPIC
        assert upstream.requests[-1]["headers"]["x-api-key"] == ANTHROPIC_KEY
        assert upstream.requests[-1]["headers"]["anthropic-version"] == "2023-06-01"
        with c.stream("POST", "/gateway/anthropic/v1/messages", json={**body, "stream": True}, headers=headers) as s:
            assert s.read() == b"".join(ANTHROPIC_STREAM)
        ev = by_type(c, {"ai.request": 2, "ai.response": 2, "agent.tool_call": 2})
        req = ev["ai.request"][0]["data"]
        assert req["provider"]["name"] == "anthropic"
        assert req["auth"]["key_prefix"] == "sk-ant-a"
        assert req["messages"][0]["role"] == "system" and req["messages"][0]["content"] == "you are careful"
        plain = next(e["data"] for e in ev["ai.response"] if e["data"]["provider_request_id"] == "msg_1")
        assert plain["thinking"] == "Let me look."
        assert plain["finish_reason"] == "tool_calls"
        assert plain["tool_calls"][0]["arguments"] == {"path": "/etc/passwd"}
        # claude-3-5-sonnet: $0.003 / 1k input, $0.015 / 1k output
        assert plain["usage"]["total_cost_usd"] == round(500 * 0.003 / 1000 + 40 * 0.015 / 1000, 8)
        streamed = next(e["data"] for e in ev["ai.response"] if e["data"]["provider_request_id"] == "msg_2")
        assert streamed["thinking"] == "I should list files."
        assert streamed["tool_calls"][0]["id"] == "toolu_2"
        assert streamed["tool_calls"][0]["arguments"] == {"command": "ls /"}
        assert streamed["usage"]["prompt_tokens"] == 700 and streamed["usage"]["completion_tokens"] == 33
        # tool_result blocks of the next turn link back to the tool_use
        follow = {
            **body,
            "messages": [
                {"role": "user", "content": "list"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {}}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bin etc", "is_error": False}
                    ],
                },
            ],
        }
        c.post("/gateway/anthropic/v1/messages", json=follow, headers=headers)
        res = wait_events(c, "agent.tool_result", 1)[0]
        call = next(e for e in ev["agent.tool_call"] if e["data"]["call_id"] == "toolu_2")
        assert res["data"]["result"] == "bin etc" and res["data"]["success"] is True
        assert res["related_events"][0]["event_id"] == call["event_id"]


def test_gemini_generate_and_stream(gateway, upstream):
    body = {
        "contents": [{"role": "user", "parts": [{"text": "what time is it?"}]}],
        "tools": [{"functionDeclarations": [{"name": "get_time", "description": "clock"}]}],
    }
    with gateway.client() as c:
        r = c.post(
            "/gateway/gemini/v1beta/models/gemini-1.5-flash:generateContent",
            json=body,
            params={"key": "AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE12"},
        )
        assert r.content == GEMINI
        assert upstream.requests[-1]["query"] == "key=AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE12"
        with c.stream(
            "POST",
            "/gateway/gemini/v1beta/models/gemini-1.5-flash:streamGenerateContent",
            json=body,
            params={"alt": "sse"},
        ) as s:
            assert s.read() == b"".join(GEMINI_STREAM)
        ev = by_type(c, {"ai.request": 2, "ai.response": 2, "agent.tool_call": 1})
        req = ev["ai.request"][0]["data"]
        assert req["provider"]["name"] == "google" and req["model"]["id"] == "gemini-1.5-flash"
        assert "key=" not in req["provider"]["endpoint"]  # the query-string key is never stored
        assert req["auth"]["key_prefix"] == "AIza"
        plain = next(e["data"] for e in ev["ai.response"] if e["data"].get("provider_request_id") == "gem-1")
        assert plain["tool_calls"][0]["name"] == "get_time" and plain["tool_calls"][0]["arguments"] == {"tz": "UTC"}
        assert plain["finish_reason"] == "tool_calls"
        streamed = next(e["data"] for e in ev["ai.response"] if e["data"].get("provider_request_id") is None)
        assert streamed["choices"][0]["message"]["content"] == "The time is noon."
        assert streamed["usage"] == {
            **streamed["usage"],
            "prompt_tokens": 90,
            "completion_tokens": 5,
            "total_tokens": 95,
        }
        assert streamed["usage"]["total_cost_usd"] > 0
        # the functionResponse (no id in Gemini) links to the call by name
        follow = {
            "contents": [
                {"role": "user", "parts": [{"text": "what time is it?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_time", "response": {"time": "12:00"}}}]},
            ]
        }
        c.post("/gateway/gemini/v1beta/models/gemini-1.5-flash:generateContent", json=follow)
        res = wait_events(c, "agent.tool_result", 1)[0]
        assert res["data"]["tool"]["name"] == "get_time"
        assert res["related_events"][0]["event_id"] == ev["agent.tool_call"][0]["event_id"]


def test_ollama_native_stream_and_plain(gateway):
    with gateway.client() as c:
        with c.stream(
            "POST",
            "/gateway/ollama/api/chat",
            json={"model": "llama3.1", "messages": [{"role": "user", "content": "time?"}]},
        ) as s:
            assert s.read() == b"".join(OLLAMA_STREAM)  # Ollama streams unless told not to
        r = c.post(
            "/gateway/ollama/api/chat",
            json={"model": "llama3.1", "stream": False, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.content == OLLAMA
        ev = by_type(c, {"ai.request": 2, "ai.response": 2, "agent.tool_call": 1})
        streamed = next(e["data"] for e in ev["ai.response"] if e["data"].get("tool_calls"))
        assert streamed["tool_calls"][0]["name"] == "get_time" and streamed["tool_calls"][0]["arguments"] == {
            "tz": "CET"
        }
        assert streamed["usage"]["prompt_tokens"] == 42 and streamed["usage"]["completion_tokens"] == 9
        plain = next(e["data"] for e in ev["ai.response"] if not e["data"].get("tool_calls"))
        assert plain["choices"][0]["message"]["content"] == "Hi there"
        assert {e["data"]["provider"]["name"] for e in ev["ai.request"]} == {"ollama"}
