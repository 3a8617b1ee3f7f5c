"""One request/response pair as seen by the gateway, handed from the proxy to the recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentwatch.capture.gateway.providers.base import ParsedRequest, Provider


@dataclass
class Exchange:
    route: str
    provider: Provider
    endpoint: str  # upstream URL without the query string (API keys may ride in it)
    path: str
    method: str
    ts: float  # epoch seconds when the request arrived
    t0: float  # perf_counter at arrival
    request: ParsedRequest
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

    @property
    def response_body(self) -> bytes:
        return b"".join(self.response_chunks)
