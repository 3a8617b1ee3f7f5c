"""HTTP for probes: capped bodies, no redirects, timeouts, every request through the scan limits.

Bodies are read raw with ``Accept-Encoding: identity`` and cut at
``max_response_bytes`` so a hostile server can neither flood memory nor send a
compression bomb. Each request also has an overall deadline, so a server
dripping one byte a second cannot hold a probe past ``read_timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from agentwatch.discovery.limits import Limits
from agentwatch.discovery.signals import Service

USER_AGENT = "agentwatch-discovery/0.1 (+https://github.com/agentwatch)"
# Deeper than any real reply; a hostile service nesting deeper could overflow ``str()`` of a value
# (Python's recursion limit) or the result's serialisation (orjson stops at 255 levels).
MAX_JSON_DEPTH = 64
# httpx raises InvalidURL (not an HTTPError) for a path a service made us build (an SSE endpoint).
REQUEST_ERRORS = (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ssl.SSLError, OSError)


def load_json(data: bytes | str) -> Any:
    """Parse a probed service's JSON; ValueError when it is not JSON or nests deeper than MAX_JSON_DEPTH."""
    doc = orjson.loads(data)
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_JSON_DEPTH:
                    raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                stack.append((child, depth + 1))
    return doc


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON, or None when it is not (or was cut, or nests too deep)."""
        if self.truncated or not self.body:
            return None
        try:
            return load_json(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def scanner_ssl_context() -> ssl.SSLContext:
    """Fingerprinting, not trusting: accept any certificate, record what it says."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_client(*, connect_timeout: float, read_timeout: float, concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=scanner_ssl_context(),
        follow_redirects=False,
        trust_env=False,
        # The port scan already proved the port accepts connections; an HTTP connect can only be slow here
        # because anyio resolves even literal addresses in a worker thread, so it gets the read budget.
        timeout=httpx.Timeout(
            connect=max(connect_timeout, read_timeout), read=read_timeout, write=read_timeout, pool=None
        ),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=min(concurrency, 64)),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


class Http:
    """The HTTP face of one service, as probes see it."""

    def __init__(
        self, service: Service, client: httpx.AsyncClient, limits: Limits, *, max_bytes: int, deadline: float
    ) -> None:
        self.service = service
        self.client = client
        self.limits = limits
        self.max_bytes = max_bytes
        self.deadline = deadline
        self._cache: dict[str, Reply | None] = {}
        self._inflight: dict[str, asyncio.Task[Reply | None]] = {}

    def url(self, path: str) -> str:
        return self.service.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        until: Callable[[bytes], bool] | None = None,
        slot: bool = True,
    ) -> Reply | None:
        """One request; None when the service did not answer in time or broke the protocol.

        ``slot=False`` only for a request made on behalf of a probe already holding a slot."""
        content = orjson.dumps(json) if json is not None else None
        hdrs = dict(headers or {})
        if content is not None:
            hdrs.setdefault("Content-Type", "application/json")
        if not slot:
            return await self._guarded(method, path, content, hdrs, until)
        async with self.limits.slot(self.service.host):
            return await self._guarded(method, path, content, hdrs, until)

    async def _guarded(
        self, method: str, path: str, content: bytes | None, hdrs: dict[str, str], until: Callable[[bytes], bool] | None
    ) -> Reply | None:
        try:
            async with asyncio.timeout(self.deadline):
                return await self._send(method, path, content, hdrs, until)
        except REQUEST_ERRORS:
            return None

    async def _send(
        self, method: str, path: str, content: bytes | None, hdrs: dict[str, str], until: Callable[[bytes], bool] | None
    ) -> Reply:
        async with self.client.stream(method, self.url(path), content=content, headers=hdrs) as r:
            chunks: list[bytes] = []
            size = 0
            truncated = False
            async for chunk in r.aiter_raw():
                size += len(chunk)
                if size > self.max_bytes:
                    chunks.append(chunk[: len(chunk) - (size - self.max_bytes)])
                    truncated = True
                    break
                chunks.append(chunk)
                if until is not None and until(b"".join(chunks)):
                    break
            return Reply(r.status_code, r.headers, b"".join(chunks), truncated)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply | None:
        """GET with a per-service cache: several probes read ``/`` or ``/openapi.json``."""
        key = f"{path}\x00{sorted((headers or {}).items())}"
        if key in self._cache:
            return self._cache[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self.request("GET", path, headers=headers))
            self._inflight[key] = task
        reply = await task
        self._cache[key] = reply
        return reply

    async def post(self, path: str, json: Any, headers: dict[str, str] | None = None, **kw: Any) -> Reply | None:
        return await self.request("POST", path, json=json, headers=headers, **kw)

    async def open_stream(self, path: str, headers: dict[str, str]) -> tuple[httpx.Response, Any] | None:
        """A streaming GET (for SSE), held open by the caller; None when it cannot be opened."""
        try:
            request = self.client.build_request("GET", self.url(path), headers=headers)
            response = await asyncio.wait_for(self.client.send(request, stream=True), self.deadline)
        except REQUEST_ERRORS:
            return None
        return response, response.aiter_raw()
