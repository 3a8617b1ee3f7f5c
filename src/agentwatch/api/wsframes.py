"""Reading client frames on the live WebSockets (text only), and re-checking their credential."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from agentwatch.api.security import Principal

UNSUPPORTED_DATA = 1003


async def receive_text(ws: WebSocket) -> str:
    """The client's next text frame. A binary frame closes the connection with 1003
    (the live protocols are JSON text); a disconnect raises ``WebSocketDisconnect``."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        await ws.close(code=UNSUPPORTED_DATA, reason="only text frames are accepted")
        raise WebSocketDisconnect(UNSUPPORTED_DATA)
    return text


POLICY_VIOLATION = 1008
RECHECK_S = 5.0  # how late a revoked key, a disabled user or an expired token may still be streamed to


async def current_principal(conn: HTTPConnection) -> Principal | None:
    """The principal behind the credential this stream was opened with, as of now; None when
    that credential no longer authenticates (revoked, expired, its user disabled or gone).

    The handshake's check alone would let a stream outlive its credential for as long as it
    stays open. Connections without a credential of their own (authentication off) keep theirs."""
    aw = conn.app.state.aw
    principal: Principal | None = getattr(conn.state, "principal", None)
    if not aw.settings.auth.enabled or principal is None or principal.kind in ("local", "anonymous"):
        return principal
    auth = getattr(aw, "auth", None)
    return None if auth is None else await auth.recheck(conn)


async def close_when_refused(
    ws: WebSocket,
    permission: str,
    stop: asyncio.Task[Any] | None = None,
    on_check: Callable[[Principal], None] | None = None,
    every_s: float = RECHECK_S,
) -> None:
    """Re-check the socket's credential every ``every_s`` (``on_check`` gets the current
    principal); once it no longer grants ``permission``, stop ``stop`` (the task that sends)
    and close with 1008, so nothing more reaches a client no longer allowed it."""
    while True:
        principal = await current_principal(ws)
        if principal is None or not principal.can(permission):
            break
        if on_check is not None:
            on_check(principal)
        await asyncio.sleep(every_s)
    if stop is not None:
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stop
    with contextlib.suppress(Exception):  # the client may be gone already
        await ws.close(code=POLICY_VIOLATION, reason="credential no longer valid")


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task of a socket and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
