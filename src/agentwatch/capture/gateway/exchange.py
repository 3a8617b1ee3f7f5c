"""One request/response pair as seen by the gateway, handed from the proxy to the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agentwatch.capture.gateway.providers.base import ParsedRequest, Provider


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
    upstream_error: str | None = None
    guard: dict[str, Any] | None = None  # the inline guard's verdict when it acted
    request_redactions: int = 0  # secrets masked before forwarding (guard action "redact")

    def capture(self, chunk: bytes, limit: int) -> None:
        if self.truncated:
            return
        if self.captured_bytes + len(chunk) > limit:
            self.truncated = True
            return
        self.response_chunks.append(chunk)
        self.captured_bytes += len(chunk)

    def parsed(self) -> ParsedRequest:
        """The parsed request; parsing waits for the recorder, after the agent has its answer."""
        if self.request is None:
            self.request = parse_request(self.provider, self.path, self.request_body)[1]
            self.request_body = b""
        return self.request

    @property
    def response_body(self) -> bytes:
        return b"".join(self.response_chunks)
