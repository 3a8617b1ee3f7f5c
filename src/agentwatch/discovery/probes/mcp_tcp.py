"""MCP over a raw TCP socket: newline-delimited JSON-RPC, as stdio servers exposed by a TCP bridge speak it.

Tried only on ports that gave no HTTP answer and no banner. The same handshake as
over HTTP: ``initialize``, ``notifications/initialized``, then the lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import orjson

from agentwatch.discovery.httpio import load_json
from agentwatch.discovery.limits import Limits
from agentwatch.discovery.probes.mcp import _enumerate, _initialize, _record, _signals, _valid_init
from agentwatch.discovery.signals import Service, Signal

MAX_LINE = 256 * 1024


async def probe(service: Service, limits: Limits, *, connect_timeout: float, deadline: float) -> list[Signal]:
    async with limits.slot(service.host):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(service.host, service.port, limit=MAX_LINE), connect_timeout
            )
        except (OSError, TimeoutError):
            return []
        try:
            async with asyncio.timeout(deadline):
                return await _session(service, reader, writer)
        except (OSError, TimeoutError, ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            return []
        finally:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 0.5)


async def _session(service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[Signal]:
    ids = itertools.count(1)

    async def send(msg: dict[str, Any]) -> None:
        writer.write(orjson.dumps(msg) + b"\n")
        await writer.drain()

    async def rpc(method: str, params: dict[str, Any] | None) -> Any:
        id_ = next(ids)
        await send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}})
        for _ in range(50):  # skip notifications and log lines until our response
            line = await reader.readline()
            if not line:
                return None
            try:
                doc = load_json(line)
            except ValueError:
                if method == "initialize":
                    return None  # not JSON-RPC at all
                continue
            if isinstance(doc, dict) and doc.get("id") == id_:
                return doc.get("result")
        return None

    init = await rpc("initialize", _initialize(0)["params"])
    if not _valid_init(init):
        return []
    await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    caps = init.get("capabilities") if isinstance(init.get("capabilities"), dict) else {}
    listed = await _enumerate(rpc, caps)
    _record(service, "", "tcp", init, listed, False)
    return _signals(service, f"tcp://{service.host}:{service.port}", "tcp", init, listed)
