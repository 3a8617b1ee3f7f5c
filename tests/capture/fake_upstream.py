"""Fake LLM providers as a real HTTP server on loopback (starlette + uvicorn), streaming and not.

Each endpoint answers with fixed bytes (``CANNED``) so tests can compare what the agent
receives with what the upstream sent, byte for byte. Streams are sent in several chunks
with pauses, like a real provider. Every request is kept in ``FakeUpstream.requests``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi


def sse(*docs: Any, done: bool = False, events: list[str] | None = None) -> list[bytes]:
    out = []
    for i, d in enumerate(docs):
        prefix = f"event: {events[i]}\n".encode() if events else b""
        out.append(prefix + b"data: " + orjson.dumps(d) + b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


# -- OpenAI chat completions ------------------------------------------------------
OPENAI_CHAT = orjson.dumps(
    {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "model": "gpt-4o-2024-11-20",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_read1",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": '{"path": "/etc/hosts"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
    }
)
_chunk = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "model": "gpt-4o-2024-11-20"}
OPENAI_CHAT_STREAM = sse(
    {**_chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {
        **_chunk,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_s1",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": ""},
                        }
                    ]
                },
            }
        ],
    },
    {**_chunk, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"pa'}}]}}]},
    {
        **_chunk,
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'th": "/tmp/a"}'}}]}}],
    },
    {
        **_chunk,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_s2",
                            "type": "function",
                            "function": {"name": "run_shell", "arguments": '{"cmd"'},
                        }
                    ]
                },
            }
        ],
    },
    {
        **_chunk,
        "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": ': "ls -la"}'}}]}}],
    },
    {**_chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {**_chunk, "choices": [], "usage": {"prompt_tokens": 2000, "completion_tokens": 50, "total_tokens": 2050}},
    done=True,
)
OPENAI_TEXT_STREAM = sse(
    {**_chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
    {**_chunk, "choices": [{"index": 0, "delta": {"content": "lo!"}}]},
    {**_chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {**_chunk, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
    done=True,
)

# -- OpenAI Responses API ---------------------------------------------------------------
RESPONSES = orjson.dumps(
    {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-4o",
        "status": "completed",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "need the weather"}]},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_w1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
        ],
        "usage": {"input_tokens": 300, "output_tokens": 20, "total_tokens": 320},
    }
)
RESPONSES_STREAM = sse(
    {"type": "response.created", "response": {"id": "resp_2", "status": "in_progress", "model": "gpt-4o"}},
    {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "function_call", "id": "fc_2", "call_id": "call_w2", "name": "get_weather", "arguments": ""},
    },
    {"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 0, "delta": '{"city": '},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_2", "output_index": 0, "delta": '"Rome"}'},
    {
        "type": "response.completed",
        "response": {
            "id": "resp_2",
            "status": "completed",
            "model": "gpt-4o",
            "output": [
                {
                    "type": "function_call",
                    "id": "fc_2",
                    "call_id": "call_w2",
                    "name": "get_weather",
                    "arguments": '{"city": "Rome"}',
                }
            ],
            "usage": {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
        },
    },
    events=[
        "response.created",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.completed",
    ],
)

# -- Anthropic --------------------------------------------------------------------------
ANTHROPIC = orjson.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-sonnet-20241022",
        "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "x"},
            {"type": "text", "text": "Reading it."},
            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "/etc/passwd"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 500, "output_tokens": 40},
    }
)
ANTHROPIC_STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_2",
            "model": "claude-3-5-sonnet-20241022",
            "usage": {"input_tokens": 700, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "I should "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "list files."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "bash", "input": {}},
    },
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"command": '}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"ls /"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 33}},
    {"type": "message_stop"},
    events=[
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ],
)

# -- Gemini -----------------------------------------------------------------------------
GEMINI = orjson.dumps(
    {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {"tz": "UTC"}}}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 7, "totalTokenCount": 87},
        "modelVersion": "gemini-1.5-flash-002",
        "responseId": "gem-1",
    }
)
GEMINI_STREAM = sse(
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "The time "}]}, "index": 0}],
        "modelVersion": "gemini-1.5-flash-002",
    },
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "is noon."}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 90, "candidatesTokenCount": 5, "totalTokenCount": 95},
        "modelVersion": "gemini-1.5-flash-002",
    },
)

# -- Ollama -----------------------------------------------------------------------------
OLLAMA_STREAM = [
    orjson.dumps(
        {
            "model": "llama3.1",
            "created_at": "2025-01-01T00:00:00Z",
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_time", "arguments": {"tz": "CET"}}}],
            },
            "done": False,
        }
    )
    + b"\n",
    orjson.dumps(
        {
            "model": "llama3.1",
            "created_at": "2025-01-01T00:00:01Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 42,
            "eval_count": 9,
        }
    )
    + b"\n",
]
OLLAMA = orjson.dumps(
    {
        "model": "llama3.1",
        "message": {"role": "assistant", "content": "Hi there"},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 10,
        "eval_count": 3,
    }
)


@dataclass
class FakeUpstream:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def _stream(chunks: list[bytes], media: str, delay: float = 0.01) -> StreamingResponse:
    async def gen() -> Any:
        for c in chunks:
            yield c
            await asyncio.sleep(delay)

    return StreamingResponse(gen(), media_type=media, headers={"x-upstream": "fake"})


def make_app(record: list[dict[str, Any]]) -> Starlette:
    async def handler(request: Request) -> Response:
        body = await request.body()
        doc = orjson.loads(body) if body else {}
        record.append(
            {"path": request.url.path, "query": request.url.query, "headers": dict(request.headers), "body": body}
        )
        path = request.url.path
        stream = isinstance(doc, dict) and doc.get("stream") is True
        if path.endswith("/chat/completions"):
            if doc.get("model") == "fail-model":
                return Response(
                    orjson.dumps({"error": {"message": "no such model", "type": "invalid_request_error"}}),
                    404,
                    media_type="application/json",
                )
            if stream:
                tools = bool(doc.get("tools"))
                return _stream(OPENAI_CHAT_STREAM if tools else OPENAI_TEXT_STREAM, "text/event-stream")
            return Response(
                OPENAI_CHAT, media_type="application/json", headers={"openai-processing-ms": "12", "x-request-id": "r1"}
            )
        if path.endswith("/responses"):
            return (
                _stream(RESPONSES_STREAM, "text/event-stream")
                if stream
                else Response(RESPONSES, media_type="application/json")
            )
        if path.endswith("/messages"):
            return (
                _stream(ANTHROPIC_STREAM, "text/event-stream")
                if stream
                else Response(ANTHROPIC, media_type="application/json")
            )
        if ":streamGenerateContent" in path:
            return _stream(GEMINI_STREAM, "text/event-stream")
        if ":generateContent" in path:
            return Response(GEMINI, media_type="application/json")
        if path == "/api/chat":
            if doc.get("stream", True):
                return _stream(OLLAMA_STREAM, "application/x-ndjson")
            return Response(OLLAMA, media_type="application/json")
        return Response(b'{"error": "not found"}', 404, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", handler, methods=["GET", "POST"])])


@contextmanager
def fake_upstream(host: str = "127.0.0.2") -> Iterator[FakeUpstream]:
    port = free_port(host)
    fake = FakeUpstream(f"http://{host}:{port}")
    with serve_asgi(make_app(fake.requests), host, port):
        yield fake
