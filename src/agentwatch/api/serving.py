"""How agentwatch runs its ASGI apps on uvicorn: one set of options for every listener.

The HTTP protocol is uvicorn's httptools one with the bounds it lacks (uvicorn 0.54 keeps
them for its h11 protocol only, or not at all):

- the request head (request line and headers) is at most ``MAX_HEAD_BYTES``; a longer one
  is answered 431 as soon as it passes the bound, instead of being gathered whole (a 64 MiB
  header was read into memory and served). Bytes are counted per read, so a read that also
  ends the previous (pipelined) request counts whole: the bound can be met a little early,
  never passed;
- the head must arrive whole within ``HEAD_TIMEOUT_S`` of the connection opening or of its
  first byte (408; a connection that sent nothing is just closed): without it a client
  held a connection for good by sending nothing, or a byte now and then;
- a body that stops arriving for ``BODY_IDLE_S`` while the route waits for it closes the
  connection (the route sees the client gone);
- so does a body that drips: once ``BODY_GRACE_S`` have passed since its first byte, it must
  have averaged ``BODY_MIN_RATE`` bytes a second (a client sending a byte every 9 seconds
  never stopped for 10, and held a connection and its partial body for good). 1 KiB/s is
  about 8 kbit/s, below any link that carries traffic at all: a 10 MiB body may take nearly
  three hours, and an honest uploader on a poor mobile link (100 kbit/s: 10 MiB in about
  14 minutes) sends twelve times the minimum. The average runs from the first byte, so a
  client that paused catches up by sending faster; while the server is not reading (the
  route has not started on the body), the connection is not judged;
- a route may answer before the body is whole (413 over a cap, 401, 404): the rest is read
  and dropped for at most ``LINGER_S`` (so the client reads the answer instead of a reset),
  then the connection is closed; uvicorn re-armed no timer then and kept it open for good.

The WebSocket protocol is uvicorn's sans-I/O one with one repair. When the upgrade request
itself cannot be parsed (``POST`` with ``Upgrade: websocket``, a request body, a header line
too long), the websockets library gives up on the handshake without emitting a request, and
uvicorn 0.54 then neither answers nor closes: the connection stays open for good. Here such a
connection gets its HTTP error answer and is closed. And every ping is answered with a pong
written at once, without flow control: a client that sends pings and reads nothing had the
server keep every pong (hundreds of MiB in seconds). Past ``WS_MAX_UNSENT`` bytes waiting to
go out, the server stops reading that client until they have gone.

The event loop is uvloop's. Its ``create_connection`` can leave a connection attempt's
future holding a ``ConnectionResetError`` that nobody retrieves when the peer resets during
connect (uvloop issue 437; the standard loop does not), and the loop then logs "Future
exception was never retrieved" at error level. The discovery scanner connects to many hosts
that reset, so :func:`quiet_unretrieved_resets` makes that one case a debug line.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from agentwatch.api.errors import STATUS_CODES, error_body

log = structlog.get_logger("agentwatch.serving")
WS_MAX_BYTES = 1024 * 1024
WS_MAX_UNSENT = 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT_S = 10.0
BODY_IDLE_S = 10.0
BODY_GRACE_S = 10.0
BODY_MIN_RATE = 1024  # bytes per second, on average from a body's first byte, after the grace
LINGER_S = 5.0
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

    def handle_ping(self) -> None:
        super().handle_ping()
        if self.transport.get_write_buffer_size() > WS_MAX_UNSENT:
            self.transport.pause_reading()  # resumed by resume_writing once the pongs have gone

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused and not self.transport.is_closing():  # read_paused: the app's queue is full
            self.transport.resume_reading()


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and timeouts (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # a new connection waits for a request head
        self._head_bytes = 0
        self._head_started = 0.0
        self._last_read = 0.0
        self._answered_early: Any = None  # the request answered before its body was whole
        self._answered_at = 0.0
        self._body_bytes = 0  # of the current request's body so far
        self._body_started = 0.0  # when its first byte came
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._head_started = self._last_read = self.loop.time()
        self._check_at(self._head_started + HEAD_TIMEOUT_S)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_watch()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"request head: the request line and headers are larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._head_started = self.loop.time()
        self._body_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._body_bytes:
            self._body_started = self._last_read
        self._body_bytes += len(body)
        super().on_body(body)

    def handle_websocket_upgrade(self) -> None:
        self._stop_watch()  # the WebSocket protocol has its own keepalive
        super().handle_websocket_upgrade()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._answered_early, self._answered_at = cycle, self.loop.time()
            self._check_at(self._answered_at + LINGER_S)

    # -- the watch: one timer per connection, at the next deadline ---------------------------
    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _check_at(self, when: float) -> None:
        self._stop_watch()
        self._watch = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        self._watch = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self._in_head:
            deadline = self._head_started + HEAD_TIMEOUT_S
            if now >= deadline:
                if self._head_bytes:
                    self._refuse(408, f"request head: not received whole within {HEAD_TIMEOUT_S:g} seconds")
                else:
                    self.transport.close()
                return
        elif cycle is not None and cycle is self._answered_early:
            deadline = self._answered_at + LINGER_S
            if now >= deadline:
                self.transport.close()
                return
        elif (
            cycle is not None
            and cycle.more_body
            and not cycle.response_complete
            and not cycle.waiting_for_100_continue
            and not self.flow.read_paused
        ):
            deadline = self._last_read + BODY_IDLE_S
            if now >= deadline:
                log.info("serving.body_stalled", idle_s=round(now - self._last_read, 1))
                self.transport.close()
                return
            if self._body_bytes:
                too_slow_at = self._too_slow_at()
                if now >= too_slow_at:
                    self._close_too_slow(now)
                    return
                deadline = min(deadline, too_slow_at)
        else:
            deadline = now + LINGER_S  # nothing to watch now: look again later
        self._check_at(deadline)

    def _too_slow_at(self) -> float:
        """When the body's average rate falls under the minimum, if no more of it comes: the
        bytes so far cover ``bytes / BODY_MIN_RATE`` seconds from the first one (never before
        the grace is over)."""
        return self._body_started + max(BODY_GRACE_S, self._body_bytes / BODY_MIN_RATE)

    def _close_too_slow(self, now: float) -> None:
        seconds = now - self._body_started
        log.info(
            "serving.body_too_slow",
            body_bytes=self._body_bytes,
            seconds=round(seconds, 1),
            min_rate=BODY_MIN_RATE,
        )
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with the API's error shape and close (the request never reached the app)."""
        body = orjson.dumps(error_body(STATUS_CODES[status], message))
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self._stop_watch()
        self.transport.write(head.encode() + body)
        self.transport.close()


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` besides the app, host and port."""
    return {
        "http": HttpProtocol,
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
