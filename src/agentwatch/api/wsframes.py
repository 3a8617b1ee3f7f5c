"""Reading client frames on the live WebSockets: text only."""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect

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
