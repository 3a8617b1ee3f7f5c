"""How agentwatch runs its ASGI apps on uvicorn: one set of options for every listener.

The WebSocket protocol is uvicorn's sans-I/O one with one repair. When the upgrade request
itself cannot be parsed (``POST`` with ``Upgrade: websocket``, a request body, a header line
too long), the websockets library gives up on the handshake without emitting a request, and
uvicorn 0.54 then neither answers nor closes: the connection stays open for good. Here such a
connection gets its HTTP error answer and is closed.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

WS_MAX_BYTES = 1024 * 1024
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
