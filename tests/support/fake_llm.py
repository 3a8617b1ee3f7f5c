"""A fake OpenAI-compatible chat backend on a loopback address, for the LLM features' tests.

It records every request and answers ``answer`` as the assistant's message, after
``delay_s``, or ``status`` with a provider-style error body. ``{rule_id}`` in the answer
becomes the id the prompt tells the model to use (rule drafting asks for a given id). A test
needing odd answers (junk, redirects, huge bodies) sets ``reply`` to build the response itself.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi

ASKED_ID = re.compile(r"Use the id ([0-9a-f-]{36})")


@dataclass
class Sent:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeLlm:
    url: str
    answer: str = "{}"
    status: int = 200
    delay_s: float = 0.0
    reply: Callable[[FakeLlm, dict[str, Any]], Response] | None = None
    sent: list[Sent] = field(default_factory=list)

    @property
    def got(self) -> list[dict[str, Any]]:
        """The request bodies, oldest first."""
        return [s.body for s in self.sent]

    def reset(self, answer: str = "{}") -> None:
        self.answer, self.status, self.delay_s, self.reply = answer, 200, 0.0, None
        self.sent.clear()

    def respond(self, body: dict[str, Any]) -> Response:
        if self.reply is not None:
            return self.reply(self, body)
        if self.status != 200:
            return Response(b'{"error": {"message": "overloaded"}}', status_code=self.status)
        asked = ASKED_ID.search(body["messages"][0]["content"])
        content = self.answer.replace("{rule_id}", asked.group(1) if asked else "no-id")
        message = {"role": "assistant", "content": content}
        doc = {"model": body.get("model"), "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        return Response(orjson.dumps(doc), media_type="application/json")


@contextmanager
def fake_llm(host: str, answer: str = "{}") -> Iterator[FakeLlm]:
    """Serve a fake backend on ``host`` (a 127.0.0.x address) until the block ends."""
    port = free_port(host)
    fake = FakeLlm(url=f"http://{host}:{port}/v1", answer=answer)

    async def completions(request: Request) -> Response:
        body = orjson.loads(await request.body())
        fake.sent.append(Sent(request.url.path, dict(request.headers), body))
        if fake.delay_s:
            await asyncio.sleep(fake.delay_s)
        return fake.respond(body)

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    with serve_asgi(app, host, port):
        yield fake
