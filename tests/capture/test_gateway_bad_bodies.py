"""Malformed bodies through the gateway: a field of the wrong type never costs a recording.

A request or an upstream response with a field of an unexpected type (a bool for the
messages, a list for a role or a tool call id, an index mixing strings and integers, a
token count beyond 64 bits) is relayed as is and still recorded as far as it can be read:
the field is left out, and nothing of the other exchanges recorded in the same batch is lost.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from agentwatch.config import Settings
from tests.capture.conftest import gateway_settings, wait_events
from tests.capture.fake_upstream import OPENAI_CHAT, sse
from tests.support.server import RunningServer, free_port, run_server, serve_asgi

HUGE = 2**64 - 1  # a JSON integer orjson reads, beyond what the store (signed 64-bit) holds
VALID = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def gateway_health(c: httpx.Client) -> dict[str, Any]:
    return c.get("/api/health").json()["capture"]["gateway"]


def settled(c: httpx.Client, recorded: int = 0, timeout: float = 10.0) -> dict[str, Any]:
    """The gateway's health once nothing waits to be recorded and at least ``recorded`` events were."""
    deadline = time.monotonic() + timeout
    while True:
        h = gateway_health(c)
        if (h["pending"] == 0 and h["events_recorded"] >= recorded) or time.monotonic() > deadline:
            return h
        time.sleep(0.05)


def data_of(c: httpx.Client, event_type: str, count: int) -> list[dict[str, Any]]:
    events = wait_events(c, event_type, count)
    assert len(events) == count, f"{len(events)} {event_type} events recorded, {count} expected"
    return [e["data"] for e in events]


# -- the fuzzer's repro ---------------------------------------------------------------


def test_a_malformed_request_costs_no_recording_of_its_batch(gateway):
    with gateway.client() as c:
        before = settled(c)
        r = c.post("/gateway/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": True})
        assert r.status_code == 200 and r.content == OPENAI_CHAT
        for _ in range(5):  # at once: recorded in the same batch as the malformed call
            assert c.post("/gateway/openai/v1/chat/completions", json=VALID).status_code == 200
        requests = data_of(c, "ai.request", 6)
        data_of(c, "ai.response", 6)
        data_of(c, "agent.tool_call", 6)
        after = settled(c, before["events_recorded"] + 18)
        # all six exchanges recorded (request, response and the canned tool call each), none dropped
        assert after["events_dropped"] - before["events_dropped"] == 0
        assert after["events_recorded"] - before["events_recorded"] == 18
        # the malformed one as far as it can be read: no messages, the rest as sent
        odd = [d for d in requests if "messages" not in d]
        assert len(odd) == 1 and odd[0]["model"] == {"id": "gpt-4o"}
        assert all(d["messages"][0]["content"] == "hello" for d in requests if d is not odd[0])


# -- malformed requests, one per provider and API ---------------------------------------


def test_malformed_requests_of_every_provider_are_recorded(gateway):
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "/gateway/openai/v1/chat/completions",
            {
                "model": "gpt-4o",
                "max_tokens": HUGE,
                "temperature": "hot",
                "top_p": True,
                "tools": 5,
                "tool_choice": [1],
                "messages": [
                    {"role": ["user"], "content": "role is a list"},
                    {"role": "tool", "tool_call_id": ["c1"], "name": ["read_file"], "content": {"x": 1}},
                    {"role": "tool", "tool_call_id": "c2", "name": ["read_file"], "content": "named by a list"},
                    {"role": {"a": 1}, "content": [{"type": "text", "text": 7}, 3, None]},
                ],
            },
        ),
        (
            "/gateway/openai/v1/responses",
            {
                "model": "gpt-4o",
                "max_output_tokens": -(2**63) - 1,
                "instructions": ["not", "text"],
                "input": [
                    {"type": "message", "role": ["developer"], "content": "role is a list"},
                    {"type": "function_call_output", "call_id": ["w1"], "output": {"o": HUGE}},
                    {"type": ["message"], "role": 5},
                ],
            },
        ),
        (
            "/gateway/anthropic/v1/messages",
            {
                "model": "claude-3-5-sonnet-20241022",
                "max_tokens": 1.5,
                "tools": 5,
                "tool_choice": {"type": ["any"]},
                "thinking": {"type": ["enabled"]},
                "system": 12,
                "messages": [
                    {"role": ["user"], "content": "role is a list"},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": ["t1"], "content": 3}]},
                ],
            },
        ),
        (
            "/gateway/anthropic/v1/messages",
            {"model": "claude-3-5-sonnet-20241022", "max_tokens": 16, "messages": {"role": "user"}},
        ),
        (
            "/gateway/gemini/v1beta/models/gemini-1.5-flash:generateContent",
            {
                "generationConfig": {"temperature": "warm", "maxOutputTokens": HUGE},
                "tools": 5,
                "systemInstruction": {"parts": "text"},
                "contents": [
                    {"role": ["user"], "parts": 7},
                    {"role": "user", "parts": [{"functionResponse": {"name": ["get_time"], "id": {}, "response": 1}}]},
                ],
            },
        ),
        (
            "/gateway/gemini/v1beta/models/gemini-1.5-flash:generateContent",
            {"tools": [{"functionDeclarations": 3}], "contents": 7},
        ),
        (
            "/gateway/ollama/api/chat",
            {
                "model": "llama3.1",
                "stream": False,
                "options": [1],
                "tools": 5,
                "messages": [
                    {"role": ["user"], "content": "role is a list"},
                    {"role": "tool", "tool_name": ["get_time"], "tool_call_id": [1], "content": "noon"},
                ],
            },
        ),
    ]
    with gateway.client() as c:
        before = settled(c)
        for path, body in calls:
            r = c.post(path, json=body)
            assert r.status_code == 200, (path, r.status_code)
        requests = data_of(c, "ai.request", len(calls))
        responses = data_of(c, "ai.response", len(calls))
        after = settled(c)
        assert after["events_dropped"] == before["events_dropped"]
        assert all(d["success"] is True for d in responses)
        by_provider: dict[str, list[dict[str, Any]]] = {}
        for d in requests:
            by_provider.setdefault(d["provider"]["name"], []).append(d)
        assert {k: len(v) for k, v in by_provider.items()} == {"openai": 2, "anthropic": 2, "google": 2, "ollama": 1}

        chat = next(d for d in by_provider["openai"] if d["request_type"] == "chat" and "parameters" not in d)
        # wrong types and a max_tokens beyond 64 bits are left out; non-string roles are unknown (user)
        assert "tools" not in chat and "tool_choice" not in chat
        assert [m["role"] for m in chat["messages"]] == ["user", "tool", "tool", "user"]
        assert "tool_call_id" not in chat["messages"][1] and "name" not in chat["messages"][2]
        responses_api = next(d for d in by_provider["openai"] if d is not chat)
        assert "parameters" not in responses_api
        assert [m["role"] for m in responses_api["messages"]] == ["user", "tool", "user"]
        anthropic = next(d for d in by_provider["anthropic"] if "messages" in d and len(d["messages"]) > 1)
        assert anthropic["parameters"] == {"thinking": "enabled"} and "tools" not in anthropic
        assert [m["role"] for m in anthropic["messages"]] == ["system", "user", "tool"]
        gemini = next(d for d in by_provider["google"] if d.get("messages"))
        assert "parameters" not in gemini and gemini["model"] == {"id": "gemini-1.5-flash"}
        assert [m["role"] for m in gemini["messages"]] == ["system", "user", "tool"]
        ollama = by_provider["ollama"][0]
        assert [m["role"] for m in ollama["messages"]] == ["user", "tool"]
        assert "name" not in ollama["messages"][1]


# -- malformed upstream responses --------------------------------------------------------


@dataclass
class Scripted:
    """A fake upstream answering each path with the chunks set for it (streamed when several)."""

    url: str
    answers: dict[str, tuple[list[bytes], str]] = field(default_factory=dict)


def _app(answers: dict[str, tuple[list[bytes], str]]) -> Starlette:
    async def handler(request: Request) -> Response:
        await request.body()
        chunks, media = answers.get(request.url.path, ([b'{"error": "not scripted"}'], "application/json"))
        if len(chunks) == 1:
            return Response(chunks[0], media_type=media)

        async def gen() -> Any:
            for c in chunks:
                yield c
                await asyncio.sleep(0.005)

        return StreamingResponse(gen(), media_type=media)

    return Starlette(routes=[Route("/{path:path}", handler, methods=["POST"])])


@contextmanager
def scripted_upstream(host: str = "127.0.0.2") -> Iterator[Scripted]:
    port = free_port(host)
    fake = Scripted(f"http://{host}:{port}")
    with serve_asgi(_app(fake.answers), host, port):
        yield fake


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with scripted_upstream() as fake:
        yield fake


@pytest.fixture
def scripted_gateway(settings: Settings, scripted: Scripted) -> Iterator[RunningServer]:
    with run_server(gateway_settings(settings, scripted)) as srv:  # type: ignore[arg-type]
        yield srv


def dumps(doc: Any) -> bytes:
    """JSON as an upstream may send it: integers of any size (orjson writes 64-bit ones only)."""
    return json.dumps(doc).encode()


JSON = "application/json"
SSE = "text/event-stream"
NDJSON = "application/x-ndjson"

ANSWERS: dict[str, tuple[list[bytes], str]] = {
    # chat completions: a model that is a list, choices an object, token counts beyond 64 bits
    "/v1/chat/completions": (
        [
            dumps(
                {
                    "id": ["x"],
                    "model": ["gpt-4o"],
                    "choices": [
                        {
                            "message": {
                                "content": 5,
                                "tool_calls": [
                                    {"id": ["c1"], "function": "read_file"},
                                    {"id": "c2", "function": {"name": {"n": 1}, "arguments": {"big": HUGE}}},
                                ],
                            },
                            "finish_reason": ["stop"],
                        },
                        7,
                    ],
                    "usage": {"prompt_tokens": HUGE, "completion_tokens": 7, "total_tokens": "8"},
                }
            )
        ],
        JSON,
    ),
    # a chat stream whose tool-call indexes mix strings and integers (and a list)
    "/v1/x/chat/completions": (
        sse(
            {"model": ["gpt-4o"], "choices": [{"delta": {"content": "Hi"}}]},
            {"choices": [{"delta": {"tool_calls": [{"index": "a", "id": "ca", "function": {"name": "read_file"}}]}}]},
            {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": ["c0"], "function": {"name": "bash"}}]}}]},
            {"choices": [{"delta": {"tool_calls": [{"index": [1], "id": "cl", "function": []}]}}]},
            {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"cmd": "ls"}'}}]}}]},
            {"choices": {"0": 1}},
            {"choices": [{"delta": {}, "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": HUGE}},
            done=True,
        ),
        SSE,
    ),
    # the Responses API: output items with ids and names of the wrong type
    "/v1/responses": (
        [
            dumps(
                {
                    "id": "resp_x",
                    "model": {"m": 1},
                    "status": "completed",
                    "output": [
                        {"type": "function_call", "call_id": ["w1"], "name": 3, "arguments": [HUGE]},
                        {"type": "message", "content": [{"type": "output_text", "text": ["no"]}]},
                    ],
                    "usage": {"input_tokens": -(2**63) - 1, "output_tokens": 2},
                }
            )
        ],
        JSON,
    ),
    # Anthropic's stream with block indexes that are not integers
    "/v1/messages": (
        sse(
            {"type": "message_start", "message": {"id": ["m"], "model": 5, "usage": {"input_tokens": HUGE}}},
            {"type": "content_block_start", "index": "x", "content_block": {"type": "text", "text": "Hel"}},
            {"type": "content_block_delta", "index": "x", "delta": {"type": "text_delta", "text": "lo"}},
            {"type": "content_block_start", "index": {"i": 1}, "content_block": {"type": "tool_use", "id": ["t"]}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t0", "name": 1}},
            {"type": "content_block_delta", "index": [0], "delta": {"partial_json": "{}"}},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
            {"type": "message_stop"},
        ),
        SSE,
    ),
    # Gemini's stream: parts and names of the wrong type, a token count beyond 64 bits
    "/v1beta/models/gemini-1.5-flash:streamGenerateContent": (
        sse(
            {"candidates": [{"content": {"parts": 3}}], "modelVersion": ["g"]},
            {"candidates": {"a": 1}},
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": "noon"}, {"functionCall": {"name": ["t"], "id": 3}}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": HUGE, "candidatesTokenCount": 4},
            },
        ),
        SSE,
    ),
    # Ollama's NDJSON stream: tool calls of the wrong shape, a model that is a number
    "/api/chat": (
        [
            dumps({"model": 1, "message": {"content": "Hi", "tool_calls": 5}, "done": False}) + b"\n",
            dumps({"message": {"tool_calls": [{"id": [1], "function": {"name": ["f"]}}]}, "done": False}) + b"\n",
            dumps({"done": True, "prompt_eval_count": HUGE, "eval_count": 2, "done_reason": 4}) + b"\n",
        ],
        NDJSON,
    ),
}


def test_malformed_upstream_responses_are_recorded(scripted, scripted_gateway):
    scripted.answers.update(ANSWERS)
    calls = [
        ("/gateway/openai/v1/chat/completions", VALID),
        ("/gateway/openai/v1/x/chat/completions", {**VALID, "stream": True}),
        ("/gateway/openai/v1/responses", {"model": "gpt-4o", "input": "hi"}),
        ("/gateway/anthropic/v1/messages", {"model": "claude-3-5-sonnet-20241022", "max_tokens": 9, "stream": True}),
        ("/gateway/gemini/v1beta/models/gemini-1.5-flash:streamGenerateContent", {"contents": []}),
        ("/gateway/ollama/api/chat", {"model": "llama3.1", "messages": [{"role": "user", "content": "hi"}]}),
    ]
    with scripted_gateway.client() as c:
        before = settled(c)
        for path, body in calls:
            r = c.post(path, json=body)
            assert r.status_code == 200, (path, r.status_code)
            upstream_path = path.removeprefix("/gateway/").partition("/")[2]
            assert r.content == b"".join(ANSWERS["/" + upstream_path][0])  # relayed as sent
        data_of(c, "ai.request", len(calls))
        responses = data_of(c, "ai.response", len(calls))
        after = settled(c)
        assert after["events_dropped"] == before["events_dropped"]

        def response(provider: str, path: str = "") -> dict[str, Any]:
            return next(d for d in responses if d["provider"]["name"] == provider and path in d["provider"]["endpoint"])

        chat = response("openai", "/v1/chat/completions")
        assert chat["model"] == {"id": "gpt-4o"}  # the request's model: the response's is a list
        assert chat["usage"]["completion_tokens"] == 7
        assert "prompt_tokens" not in chat["usage"] and "total_tokens" not in chat["usage"]
        assert [(t["id"], t["name"]) for t in chat["tool_calls"]] == [("", ""), ("c2", "")]
        assert chat["tool_calls"][1]["arguments"] == {"big": str(HUGE)}  # kept, as its decimal string

        stream = response("openai", "/v1/x/chat/completions")
        assert stream["choices"][0]["message"]["content"] == "Hi"
        # integer indexes first, then the others in the order of their JSON text
        assert [(t["id"], t["name"]) for t in stream["tool_calls"]] == [("", "bash"), ("ca", "read_file"), ("cl", "")]
        assert stream["tool_calls"][0]["arguments"] == {"cmd": "ls"}
        assert "usage" not in stream or "prompt_tokens" not in stream["usage"]

        resp_api = response("openai", "/v1/responses")
        assert resp_api["tool_calls"][0]["arguments"] == {"_value": [str(HUGE)]}
        assert resp_api["usage"]["completion_tokens"] == 2 and "prompt_tokens" not in resp_api["usage"]

        anthropic = response("anthropic")
        assert anthropic["choices"][0]["message"]["content"] == "Hello"
        assert anthropic["usage"]["completion_tokens"] == 3 and "prompt_tokens" not in anthropic["usage"]
        assert anthropic["finish_reason"] == "tool_calls"
        assert {t["id"] for t in anthropic["tool_calls"]} == {"t0", ""}

        gemini = response("google")
        assert gemini["choices"][0]["message"]["content"] == "noon"
        assert gemini["usage"]["completion_tokens"] == 4 and "prompt_tokens" not in gemini["usage"]
        assert [(t["id"], t["name"]) for t in gemini["tool_calls"]] == [("gemini-call-0", "")]

        ollama = response("ollama")
        assert ollama["choices"][0]["message"]["content"] == "Hi"
        assert ollama["usage"]["completion_tokens"] == 2 and "prompt_tokens" not in ollama["usage"]
        assert [(t["id"], t["name"]) for t in ollama["tool_calls"]] == [("ollama-call-0", "")]
        assert ollama["finish_reason"] == "tool_calls"
