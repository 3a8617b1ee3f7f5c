"""How agentwatch runs its ASGI apps on uvicorn: one set of options for every listener.

The WebSocket protocol is uvicorn's sans-I/O one with one repair. When the upgrade request
itself cannot be parsed (``POST`` with ``Upgrade: websocket``, a request body, a header line
too long), the websockets library gives up on the handshake without emitting a request, and
uvicorn 0.54 then neither answers nor closes: the connection stays open for good. Here such a
connection gets its HTTP error answer and is closed.

The event loop is uvloop's. Its ``create_connection`` can leave a connection attempt's
future holding a ``ConnectionResetError`` that nobody retrieves when the peer resets during
connect (uvloop issue 437; the standard loop does not), and the loop then logs "Future
exception was never retrieved" at error level. The discovery scanner connects to many hosts
that reset, so :func:`quiet_unretrieved_resets` makes that one case a debug line.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = structlog.get_logger("agentwatch.serving")
WS_MAX_BYTES = 1024 * 1024
PEER_GONE = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
BAD_UPGRADE = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 37\r\nconnection: close\r\n\r\nnot a valid WebSocket upgrade request"
)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.handshake_initiated or self.transport.is_closing() or self.conn.handshake_exc is None:
            return
        answer = b"".join(self.conn.data_to_send())  # an HTTP error the library wrote, or nothing
        self.transport.write(answer or BAD_UPGRADE)
        self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` besides the app, host and port."""
    return {
        "ws": WebSocketProtocol,
        "ws_max_size": WS_MAX_BYTES,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }


def quiet_unretrieved_resets(loop: asyncio.AbstractEventLoop) -> None:
    """Log a never-retrieved connection reset at debug level; pass everything else on as before."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if context.get("message") == "Future exception was never retrieved" and isinstance(exc, PEER_GONE):
            log.debug("loop.connection_reset_unretrieved", error=type(exc).__name__)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
