"""Streamed answers through the gateway, against an upstream scripted byte by byte.

The fake upstream is a plain asyncio server on loopback. It answers each request with the
events its path names (or holds a stream open until the gateway closes the connection) and
notes when each connection ended, so what the agent gets, what the upstream sees and what
is recorded can all be checked.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from agentwatch.capture.gateway import transport
from tests.capture.conftest import gateway_settings
from tests.capture.test_gateway_transport import answer, chunked
from tests.support.server import RunningServer, free_port, open_settings, run_server

SSE_HEAD = answer("200 OK", [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])


@dataclass
class StreamUpstream:
    """A loopback upstream that answers one request per connection with ``play(target, reader, writer)``."""

    host: str
    port: int
    play: Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    closed_at: dict[str, float] = field(default_factory=dict)  # request target -> when its connection ended

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = ""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head[:-4].split(b"\r\n")
            length = 0
            for h in rest:
                k, _, v = h.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            await reader.readexactly(length)
            target = line.split(b" ")[1].decode()
            await self.play(target, reader, writer)
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed_at[target] = time.monotonic()
            writer.close()


async def until_closed(reader: asyncio.StreamReader, limit: float = 60.0) -> None:
    """Wait (at most ``limit`` seconds) for the gateway to close the connection."""
    try:
        async with asyncio.timeout(limit):
            while await reader.read(65536):
                pass
    except TimeoutError:
        pass


@contextmanager
def stream_upstream(play: Any, host: str = "127.0.0.2") -> Iterator[StreamUpstream]:
    up = StreamUpstream(host, free_port(host), play)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(up.handle, host, up.port), loop).result(10)
    try:
        yield up
    finally:

        async def stop() -> None:
            server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def raw_post(srv: RunningServer, path: str, doc: dict[str, Any]) -> socket.socket:
    """A POST sent on a plain socket, so the test decides when the agent hangs up."""
    host, port = srv.url.removeprefix("http://").split(":")
    body = orjson.dumps(doc)
    s = socket.create_connection((host, int(port)), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    s.sendall(head.encode() + body)
    return s


def read_until(s: socket.socket, marker: bytes, limit: float = 10.0) -> bytes:
    got = b""
    deadline = time.monotonic() + limit
    while marker not in got and time.monotonic() < deadline:
        data = s.recv(65536)
        if not data:
            break
        got += data
    return got


def wait_for(check: Callable[[], bool], limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


CAPTURE_LIMIT = 4096  # capture.max_capture_bytes of the gateway under test


def typed_event(kind: str, doc: dict[str, Any]) -> bytes:
    """An SSE event named ``kind`` whose data has the same ``type`` (Anthropic, the Responses API)."""
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **doc}) + b"\n\n"


def openai_chunk(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps({"id": "chatcmpl-1", "model": "gpt-4o", **doc}) + b"\n\n"


MESSAGE_START = typed_event(
    "message_start",
    {
        "message": {
            "id": "msg_1",
            "model": "claude-3-5-sonnet-20241022",
            "usage": {"input_tokens": 25, "output_tokens": 1},
        }
    },
)
TEXT_BLOCK = typed_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})


def text_delta(text: str) -> bytes:
    return typed_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})


# what the upstream answers, by the path segment after /v1/ (each test has its own)
ANSWERS: dict[str, list[bytes]] = {
    # a long answer: past the capture limit long before its end, where the token counts are
    "tail-chat": [openai_chunk({"choices": [{"index": 0, "delta": {"content": "x" * 500}}]})] * 20
    + [
        openai_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        openai_chunk({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2000, "total_tokens": 2012}}),
        b"data: [DONE]\n\n",
    ],
    "tail-msg": [MESSAGE_START, TEXT_BLOCK]
    + [text_delta("y" * 500)] * 20
    + [
        typed_event("content_block_stop", {"index": 0}),
        typed_event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3000}}),
        typed_event("message_stop", {}),
    ],
    "tail-resp": [typed_event("response.output_text.delta", {"delta": "z" * 500})] * 20
    + [
        typed_event(
            "response.completed",
            {
                "response": {
                    "id": "resp_1",
                    "model": "gpt-4o",
                    "status": "completed",
                    "output": [{"type": "message", "content": [{"type": "output_text", "text": "z" * 2000}]}],
                    "usage": {"input_tokens": 7, "output_tokens": 2500, "total_tokens": 2507},
                }
            },
        )
    ],
    # the Responses API reports a failure mid-stream with an event of type "error", then ends
    "error": [
        typed_event("response.created", {"response": {"id": "resp_2", "model": "gpt-4o", "status": "in_progress"}}),
        typed_event("response.output_text.delta", {"delta": "Half an ans"}),
        typed_event(
            "error", {"code": "server_error", "message": "The model crashed", "param": None, "sequence_number": 3}
        ),
    ],
    "done": [
        openai_chunk({"choices": [{"index": 0, "delta": {"content": "All said."}}]}),
        openai_chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ],
    # legacy completions stream their text in choices[].text, not in a delta
    "legacy": [
        openai_chunk({"object": "text_completion", "choices": [{"index": 0, "text": "def add(a, b):"}]}),
        openai_chunk({"object": "text_completion", "choices": [{"index": 0, "text": " return a + b"}]}),
        openai_chunk({"object": "text_completion", "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ],
}


async def play(target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request on its connection, then close it (each request opens a new one)."""
    name = target.split("/")[2]
    if name == "pause":  # what a model says before it pauses: the agent hangs up meanwhile
        writer.write(SSE_HEAD + chunked(MESSAGE_START + TEXT_BLOCK + text_delta("Thinking"))[:-5])
        await writer.drain()
        await until_closed(reader)
        return
    if name == "done":  # the whole answer, but the end of the HTTP body is slow to come
        writer.write(SSE_HEAD + chunked(*ANSWERS[name])[:-5])
        await writer.drain()
        await until_closed(reader)
        return
    writer.write(SSE_HEAD)
    for event in ANSWERS[name]:
        writer.write(chunked(event)[:-5])
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


@pytest.fixture(scope="module")
def upstream() -> Iterator[StreamUpstream]:
    with stream_upstream(play) as up:
        yield up


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str, upstream: StreamUpstream
) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("gateway"), module_database_url)
    with run_server(gateway_settings(settings, upstream, max_capture_bytes=CAPTURE_LIMIT)) as srv:
        yield srv


def responses_of(c: httpx.Client, path: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The stored ai.response events of one upstream path, once ``count`` of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        events = c.get("/api/events", params={"type": "ai.response", "limit": 1000}).json()["events"]
        mine = [e for e in events if e["data"]["provider"]["endpoint"].endswith(path)]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def requests_of(c: httpx.Client, path: str) -> list[dict[str, Any]]:
    events = c.get("/api/events", params={"type": "ai.request", "limit": 1000}).json()["events"]
    return [e for e in events if e["data"]["provider"]["endpoint"].endswith(path)]


def test_an_agent_leaving_while_the_model_pauses_frees_the_upstream_and_is_recorded_once(gateway, upstream):
    """The model pauses mid-stream; the agent hangs up meanwhile. The gateway closes the upstream
    connection there and then (it waited for the upstream's next bytes, up to the 600 s read
    timeout), and records the exchange once: what the agent got, the input tokens the stream had
    reported, and the disconnection as the error."""
    path = "/v1/pause/messages"
    gw = gateway.aw.components["gateway"]
    body = {"model": "claude-3-5-sonnet-20241022", "max_tokens": 64, "stream": True, "messages": []}
    upstream.closed_at.pop(path, None)  # the upstream serves the module's tests on each store
    s = raw_post(gateway, "/gateway/anthropic" + path, body)
    assert b"Thinking" in read_until(s, b"Thinking")
    left = time.monotonic()
    s.close()
    assert wait_for(lambda: path in upstream.closed_at), "the upstream connection was left open"
    assert upstream.closed_at[path] - left < 5
    assert wait_for(lambda: gw.pool.slots._value == transport.MAX_CONNECTIONS)
    with gateway.client() as c:
        resp = responses_of(c, path)[0]
        data = resp["data"]
        assert data["success"] is False and data["status_code"] == 200  # the agent had its 200
        assert data["error"]["type"] == "client_disconnected"
        assert resp["confidence"]["completeness"] == "partial"
        assert data["choices"][0]["message"]["content"] == "Thinking"
        assert data["usage"]["prompt_tokens"] == 25  # what message_start had counted
        assert len(responses_of(c, path, 2, timeout=1.0)) == 1 and len(requests_of(c, path)) == 1


def test_an_agent_leaving_after_the_last_event_is_not_recorded_as_a_failure(gateway, upstream):
    """The agent hangs up once it has ``[DONE]``, before the upstream's closing bytes: it had the
    whole answer, so the exchange is a success (and the upstream connection is let go)."""
    path = "/v1/done/chat/completions"
    upstream.closed_at.pop(path, None)
    s = raw_post(gateway, "/gateway/openai" + path, {"model": "gpt-4o", "stream": True, "messages": []})
    assert b"[DONE]" in read_until(s, b"[DONE]")
    s.close()
    assert wait_for(lambda: path in upstream.closed_at), "the upstream connection was left open"
    with gateway.client() as c:
        resp = responses_of(c, path)[0]
        data = resp["data"]
        assert data["success"] is True and "error" not in data
        assert data["choices"][0]["message"]["content"] == "All said."
        assert resp["confidence"]["completeness"] != "partial"


@pytest.mark.parametrize(
    ("route", "path", "usage", "finish"),
    [
        ("openai", "/v1/tail-chat/chat/completions", {"prompt_tokens": 12, "completion_tokens": 2000}, "stop"),
        ("anthropic", "/v1/tail-msg/messages", {"prompt_tokens": 25, "completion_tokens": 3000}, "stop"),
        ("openai", "/v1/tail-resp/responses", {"prompt_tokens": 7, "completion_tokens": 2500}, "stop"),
    ],
)
def test_a_stream_past_the_capture_limit_keeps_its_final_token_counts(gateway, route, path, usage, finish):
    """A long answer outgrows ``capture.max_capture_bytes`` well before its last events, which
    carry the token counts; they were lost with the rest, so the longest (costliest) calls were
    recorded with no usage and no cost. The stream's tail is now kept for them."""
    name = path.split("/")[2]
    body = {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}, "messages": []}
    with gateway.client() as c:
        r = c.post(f"/gateway/{route}{path}", json=body)
        assert r.content == b"".join(ANSWERS[name])  # the agent gets every byte
        assert len(r.content) > 2 * CAPTURE_LIMIT
        resp = responses_of(c, path)[0]
        data = resp["data"]
        assert {k: data["usage"][k] for k in usage} == usage
        assert data["usage"]["total_tokens"] == sum(usage.values())
        assert data["usage"]["total_cost_usd"] > 0
        assert data["finish_reason"] == finish
        assert resp["confidence"]["completeness"] == "partial"  # the middle of the answer is missing
        assert resp["confidence"]["missing"] == ["response_body_after_capture_limit"]


def test_a_responses_stream_error_event_is_recorded_as_the_error(gateway):
    """The Responses API ends a failed stream with an event of type ``error`` (code, message):
    it was skipped, and the exchange recorded as a success."""
    path = "/v1/error/responses"
    with gateway.client() as c:
        r = c.post("/gateway/openai" + path, json={"model": "gpt-4o", "stream": True, "input": "hi"})
        assert r.content == b"".join(ANSWERS["error"])
        resp = responses_of(c, path)[0]
        data = resp["data"]
        assert data["success"] is False
        assert data["error"] == {"type": "server_error", "message": "The model crashed"}
        assert data["choices"][0]["message"]["content"] == "Half an ans"
        assert resp["confidence"]["completeness"] == "partial"


def test_streamed_legacy_completions_record_their_text(gateway):
    """A streamed ``/v1/completions`` answer carries its text in ``choices[].text``, as the plain
    answer does; only chat deltas were read, so the streamed text was recorded empty."""
    path = "/v1/legacy/completions"
    with gateway.client() as c:
        r = c.post(
            "/gateway/openai" + path, json={"model": "gpt-3.5-turbo-instruct", "prompt": "def add", "stream": True}
        )
        assert r.status_code == 200
        data = responses_of(c, path)[0]["data"]
        assert data["choices"][0]["message"]["content"] == "def add(a, b): return a + b"
        assert data["finish_reason"] == "stop"
