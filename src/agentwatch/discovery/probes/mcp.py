"""MCP servers over Streamable HTTP and over the legacy HTTP+SSE transport.

Streamable HTTP: POST ``initialize`` with ``Accept: application/json, text/event-stream``,
accept a JSON or an SSE-framed reply, keep the ``Mcp-Session-Id`` the server
assigns, send ``notifications/initialized``, then list tools, resources and
prompts with the negotiated ``MCP-Protocol-Version`` header, and end the session
with DELETE. Legacy SSE: GET the stream, wait for ``event: endpoint``, POST the
same requests to that endpoint (same origin only) and read replies from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from agentwatch.discovery.httpio import Http, Reply, load_json
from agentwatch.discovery.signals import Service, Signal
from agentwatch.discovery.sse import SseParser, parse_all

PROTOCOL_VERSION = "2025-06-18"
KNOWN_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")
STREAMABLE_PATHS = ("/mcp", "/")
LEGACY_PATHS = ("/sse",)
ACCEPT = "application/json, text/event-stream"
MAX_PAGES = 5
MAX_ITEMS = 200
CLIENT_INFO = {"name": "agentwatch-discovery", "version": "0.1"}

Rpc = Callable[[str, dict[str, Any] | None], Awaitable[Any]]


def _initialize(id_: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "initialize",
        "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO},
    }


def _valid_init(result: Any) -> bool:
    return (
        isinstance(result, dict)
        and isinstance(result.get("protocolVersion"), str)
        and isinstance(result.get("capabilities", {}), dict)
        and ("serverInfo" in result or "capabilities" in result)
    )


def _response_for(messages: list[Any], id_: int) -> dict[str, Any] | None:
    for m in messages:
        if isinstance(m, dict) and m.get("jsonrpc") == "2.0" and m.get("id") == id_ and ("result" in m or "error" in m):
            return m
    return None


def _messages(reply: Reply) -> list[Any]:
    """JSON-RPC messages in a reply, whether plain JSON (one or a batch) or SSE-framed."""
    if reply.content_type == "text/event-stream":
        out: list[Any] = []
        for ev in parse_all(reply.body):
            if ev.event == "message":
                with contextlib.suppress(ValueError):
                    out.append(load_json(ev.data))
        return out
    doc = reply.json()
    return doc if isinstance(doc, list) else [doc]


def _done(id_: int) -> Callable[[bytes], bool]:
    """Stop reading a reply once it holds the response to ``id_`` (an SSE reply may stay open)."""

    def check(body: bytes) -> bool:
        head = body.lstrip()[:1]
        if head in (b"{", b"["):
            return False  # plain JSON: read to the end
        events = parse_all(body) if body.endswith((b"\n\n", b"\r\n\r\n")) else []
        msgs = []
        for ev in events:
            with contextlib.suppress(ValueError):
                msgs.append(load_json(ev.data))
        return _response_for(msgs, id_) is not None

    return check


async def _enumerate(rpc: Rpc, capabilities: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """tools/list, resources/list and prompts/list, following cursors a few pages deep."""
    found: dict[str, list[dict[str, Any]]] = {"tools": [], "resources": [], "prompts": []}
    for kind in found:
        if capabilities and kind not in capabilities:
            continue
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"cursor": cursor} if cursor else {}
            result = await rpc(f"{kind}/list", params)
            if not isinstance(result, dict) or not isinstance(result.get(kind), list):
                break
            for item in result[kind]:
                if isinstance(item, dict) and len(found[kind]) < MAX_ITEMS:
                    found[kind].append(_summary(kind, item))
            cursor = result.get("nextCursor") if isinstance(result.get("nextCursor"), str) else None
            if not cursor:
                break
    return found


def _summary(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "description") if kind != "resources" else ("uri", "name", "mimeType")
    return {k: str(item[k])[:500] for k in keep if k in item}


def _signals(service: Service, url: str, transport: str, init: dict[str, Any], listed: dict[str, Any]) -> list[Signal]:
    info = init.get("serverInfo") if isinstance(init.get("serverInfo"), dict) else {}
    name = str(info.get("name", ""))[:200]
    ev = {"host": service.host, "port": service.port, "url": url, "transport": transport}
    signals = [
        Signal(
            detector="mcp_detector",
            signal_type="mcp_initialize",
            description=f"MCP server {name or '(unnamed)'} answered initialize at {url} ({transport})",
            confidence="confirmed",
            evidence={**ev, "protocol_version": init.get("protocolVersion"), "server_info": info},
            framework="mcp",
            agent_type="mcp_server",
        )
    ]
    counts = {k: len(v) for k, v in listed.items()}
    if any(counts.values()):
        signals.append(
            Signal(
                detector="mcp_detector",
                signal_type="mcp_capabilities_enumerated",
                description=f"MCP server at {url} lists {counts['tools']} tools, {counts['resources']} resources, "
                f"{counts['prompts']} prompts",
                confidence="high",
                evidence={**ev, **counts, "tools": [t.get("name") for t in listed["tools"]][:50]},
                framework="mcp",
                agent_type="mcp_server",
            )
        )
    return signals


def _record(
    service: Service, path: str, transport: str, init: dict[str, Any], listed: dict[str, Any], session: bool
) -> None:
    service.mcp = {
        "transport": transport,
        "endpoint": path,
        "protocol_version": init.get("protocolVersion"),
        "server_info": init.get("serverInfo") if isinstance(init.get("serverInfo"), dict) else {},
        "capabilities": init.get("capabilities") if isinstance(init.get("capabilities"), dict) else {},
        "session": session,
        **listed,
    }


# -- Streamable HTTP ---------------------------------------------------------


async def _streamable(http: Http, service: Service, path: str) -> list[Signal]:
    ids = itertools.count(1)
    first = next(ids)
    reply = await http.post(path, _initialize(first), headers={"Accept": ACCEPT}, until=_done(first))
    if reply is None or reply.status != 200:
        return []
    init_msg = _response_for(_messages(reply), first)
    if init_msg is None or not _valid_init(init_msg.get("result")):
        return []
    init = init_msg["result"]
    version = init["protocolVersion"] if init["protocolVersion"] in KNOWN_VERSIONS else PROTOCOL_VERSION
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": version}
    session = reply.headers.get("mcp-session-id")
    if session and len(session) <= 256 and session.isprintable():
        headers["Mcp-Session-Id"] = session
    await http.post(path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)

    async def rpc(method: str, params: dict[str, Any] | None) -> Any:
        id_ = next(ids)
        body = {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}
        r = await http.post(path, body, headers=headers, until=_done(id_))
        if r is None or r.status != 200:
            return None
        msg = _response_for(_messages(r), id_)
        return None if msg is None else msg.get("result")

    caps = init.get("capabilities") if isinstance(init.get("capabilities"), dict) else {}
    listed = await _enumerate(rpc, caps)
    if "Mcp-Session-Id" in headers:
        await http.request("DELETE", path, headers=headers)
    _record(service, path, "streamable-http", init, listed, "Mcp-Session-Id" in headers)
    return _signals(service, http.url(path), "streamable-http", init, listed)


async def probe_streamable(http: Http, service: Service) -> list[Signal]:
    for path in STREAMABLE_PATHS:
        if service.mcp is not None:
            return []
        found = await _streamable(http, service, path)
        if found:
            return found
    return []


# -- legacy HTTP+SSE ---------------------------------------------------------


async def _events(raw: AsyncIterator[bytes], limit: int) -> AsyncIterator[Any]:
    parser = SseParser()
    size = 0
    async for chunk in raw:
        size += len(chunk)
        if size > limit:
            return
        for ev in parser.feed(chunk):
            yield ev


async def _legacy(http: Http, service: Service, path: str) -> list[Signal]:
    opened = await http.open_stream(path, {"Accept": "text/event-stream"})
    if opened is None:
        return []
    response, raw = opened
    try:
        if response.status_code != 200 or "text/event-stream" not in response.headers.get("content-type", ""):
            return []
        events = _events(raw, http.max_bytes)
        async with asyncio.timeout(http.deadline):
            first = await anext(events, None)
        if first is None or first.event != "endpoint":
            return []
        try:
            target = urljoin(http.url(path), first.data.strip())
            here, there = urlsplit(http.url(path)), urlsplit(target)
        except ValueError:
            return []  # not a URL (an unclosed IPv6 bracket, ...)
        if (here.scheme, here.netloc) != (there.scheme, there.netloc):
            return []  # never follow an endpoint to another origin
        post_path = there.path + (f"?{there.query}" if there.query else "")
        ids = itertools.count(1)

        async def rpc(method: str, params: dict[str, Any] | None, *, notify: bool = False) -> Any:
            msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
            if params is not None:
                msg["params"] = params
            id_ = None if notify else next(ids)
            if id_ is not None:
                msg["id"] = id_
            r = await http.request("POST", post_path, json=msg, slot=False)  # the stream's slot covers it
            if r is None or r.status >= 300 or id_ is None:
                return None
            async with asyncio.timeout(http.deadline):
                async for ev in events:
                    if ev.event != "message":
                        continue
                    try:
                        doc = load_json(ev.data)
                    except ValueError:
                        continue
                    if isinstance(doc, dict) and doc.get("id") == id_:
                        return doc.get("result")
            return None

        init = await rpc("initialize", _initialize(0)["params"])
        if not _valid_init(init):
            return []
        await rpc("notifications/initialized", None, notify=True)
        caps = init.get("capabilities") if isinstance(init.get("capabilities"), dict) else {}
        listed = await _enumerate(lambda m, p: rpc(m, p), caps)
        _record(service, path, "sse", init, listed, True)
        return _signals(service, http.url(path), "sse", init, listed)
    except TimeoutError:
        return []
    finally:
        with contextlib.suppress(Exception):
            await response.aclose()


async def probe_legacy_sse(http: Http, service: Service) -> list[Signal]:
    for path in LEGACY_PATHS:
        async with http.limits.slot(service.host):
            found = await _legacy(http, service, path)
        if found:
            return found
    return []
