"""A minimal OpenAI-shaped upstream for the gateway benchmark (raw ASGI on uvicorn, loopback only).

Non-streaming requests get one fixed chat completion; streaming ones get a fixed SSE stream
of ``--chunks`` deltas and a final usage chunk. No pauses: the benchmark measures what a proxy adds.
"""

from __future__ import annotations

import argparse
import json

import uvicorn

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-11-20",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong " * 20}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 20, "total_tokens": 40},
    }
).encode()


def stream_chunks(n: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o"}
    out = [
        b"data: "
        + json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}).encode()
        + b"\n\n"
    ]
    for i in range(n):
        d = {**base, "choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
        out.append(b"data: " + json.dumps(d).encode() + b"\n\n")
    out.append(
        b"data: "
        + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode()
        + b"\n\n"
    )
    usage = {**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n}}
    out.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def make_app(chunks: int):
    stream = stream_chunks(chunks)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        if b'"stream": true' in body or b'"stream":true' in body:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
            )
            for c in stream:
                await send({"type": "http.response.body", "body": c, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(COMPLETION)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": COMPLETION})

    return app


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.2")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--chunks", type=int, default=20)
    a = p.parse_args()
    uvicorn.run(make_app(a.chunks), host=a.host, port=a.port, log_level="warning", access_log=False)
