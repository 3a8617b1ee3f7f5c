"""One request/response pair as seen by the gateway, handed from the proxy to the recorder."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentwatch.capture.gateway.providers.base import ParsedRequest, Provider

# the last bytes of a stream kept past the capture limit: its final events carry the usage
# (OpenAI's include_usage chunk, Anthropic's message_delta, the Responses API's response.completed)
TAIL_BYTES = 1024 * 1024


def parse_request(provider: Provider, path: str, body: bytes) -> tuple[Any, ParsedRequest]:
    """The request body as JSON (None when it is not JSON) and what the provider makes of it."""
    doc: Any = None
    if body and body[:1] in (b"{", b"["):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
    preq = provider.parse_request(path, doc) if doc is not None else ParsedRequest(is_llm_call=False)
    if preq.model is None:
        preq.model = provider.request_model(path, doc)
    return doc, preq


@dataclass
class Exchange:
    route: str
    provider: Provider
    endpoint: str  # upstream URL without the query string (API keys may ride in it)
    path: str
    method: str
    ts: float  # epoch seconds when the request arrived
    t0: float  # perf_counter at arrival
    request: ParsedRequest | None = None  # parsed on the request path only when the guard enforces
    request_body: bytes = b""  # as forwarded, until the recorder parses it (see ``parsed``)
    api_key: str | None = None  # in memory only: hashed by the recorder, never stored
    traceparent: str | None = None
    agent: str | None = None
    session_id: str | None = None
    user_agent: str | None = None
    client: tuple[str, int] | None = None
    server_port: int | None = None
    process: dict[str, Any] | None = None  # the local process that sent the request, when found
    t_first: float | None = None  # perf_counter at the first response byte
    t_end: float | None = None
    status_code: int | None = None
    content_type: str = ""
    response_chunks: list[bytes] = field(default_factory=list)
    captured_bytes: int = 0
    truncated: bool = False
    tail: deque[bytes] = field(default_factory=deque)  # once truncated: the latest bytes, at most TAIL_BYTES
    tail_bytes: int = 0
    upstream_error: str | None = None
    client_left: bool = False  # the agent hung up before the answer was over (upstream_error says when)
    guard: dict[str, Any] | None = None  # the inline guard's verdict when it acted
    request_redactions: int = 0  # secrets masked before forwarding (guard action "redact")

    def capture(self, chunk: bytes, limit: int) -> None:
        """Keep ``chunk`` for the recorder: the first ``limit`` bytes of the answer, then its tail."""
        if not self.truncated:
            room = limit - self.captured_bytes
            if len(chunk) <= room:
                self.response_chunks.append(chunk)
                self.captured_bytes += len(chunk)
                return
            self.truncated = True
            if room > 0:  # the head is the answer's first ``limit`` bytes, whatever the reads were
                self.response_chunks.append(chunk[:room])
                self.captured_bytes = limit
        self._keep_tail(chunk, min(TAIL_BYTES, limit))

    def _keep_tail(self, chunk: bytes, cap: int) -> None:
        """Keep the stream's latest ``cap`` bytes (or a little more: whole chunks) past the limit.

        A long stream outgrows the capture limit before its end, and its end is where the token
        counts are: without the tail, the costliest calls were recorded with no usage at all.
        """
        if len(chunk) > cap:
            chunk = chunk[-cap:]
        tail = self.tail
        tail.append(chunk)
        self.tail_bytes += len(chunk)
        while self.tail_bytes - len(tail[0]) >= cap:
            self.tail_bytes -= len(tail.popleft())

    @property
    def stream_end(self) -> bytes:
        """The kept tail from its first whole line on (empty when the capture was not truncated)."""
        data = b"".join(self.tail)
        cut = data.find(b"\n")
        return data[cut + 1 :] if cut >= 0 else b""

    def parsed(self) -> ParsedRequest:
        """The parsed request; parsing waits for the recorder, after the agent has its answer."""
        if self.request is None:
            self.request = parse_request(self.provider, self.path, self.request_body)[1]
            self.request_body = b""
        return self.request

    @property
    def response_body(self) -> bytes:
        return b"".join(self.response_chunks)
