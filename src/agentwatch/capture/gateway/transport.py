"""The gateway's upstream HTTP/1.1 client: pooled keep-alive connections on asyncio, behind the SSRF guard.

Every new connection re-checks the addresses it is about to use and connects to the checked
address (DNS rebinding safe): cloud metadata, multicast and reserved addresses are always
refused; loopback only when ``capture.allow_loopback_upstreams`` is set, private ranges only
with ``capture.allow_private_upstreams``. Redirects are never followed, no cookie is kept
(one agent's provider cookies never reach another agent's requests).

Why not an HTTP client library: the gateway's hot path is one request on a kept-alive
connection and a relay of what comes back. An ``asyncio.Protocol`` feeding httptools' C
parser (the one uvicorn uses) does that with one write per request and no per-read
coroutine, cancel scope or state-machine event: a fraction of the CPU of httpcore + h11 +
anyio per request. Body bytes that arrive together are handed to the relay together; the
upstream is paused when the agent reads slower than the upstream writes (bounded buffer).

Limits: the status line and headers of a response are capped (:data:`MAX_HEADER_BYTES`);
timeouts apply to connecting (``min(10 s, upstream_timeout_s)``), to waiting for a free
connection slot, and to every wait for upstream bytes (``upstream_timeout_s``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import ssl
import time
from collections import deque
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import httptools

from agentwatch.net.ssrf import IPAddress, SSRFError, address_problem, check_addresses

REFUSED_PREFIX = "upstream refused by the SSRF guard: "
MAX_HEADER_BYTES = 100 * 1024  # status line + response headers
MAX_READ_AHEAD = 256 * 1024  # body bytes buffered ahead of the relay before the upstream is paused
MAX_CONNECTIONS = 1000  # requests in flight to all upstreams
MAX_IDLE = 200  # kept-alive connections waiting for the next request
KEEPALIVE_EXPIRY_S = 30.0


def upstream_problem(ip: IPAddress, *, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why the gateway may not connect to ``ip`` (None when it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    problem = address_problem(ip, allow_private=True)  # metadata, multicast, reserved: always refused
    if problem:
        return problem
    if ip.is_loopback:
        return None if allow_loopback else f"{ip} is a loopback address (set capture.allow_loopback_upstreams)"
    if address_problem(ip, allow_private=False) is not None and not allow_private:
        return f"{ip} is not a public address (set capture.allow_private_upstreams)"
    return None


def literal_problem(url: str, *, allow_loopback: bool, allow_private: bool) -> str | None:
    """The refusal for a URL whose host is an IP literal, decided without DNS (None otherwise)."""
    try:
        host = urlsplit(url).hostname or ""
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host in ("localhost", "localhost.localdomain") and not allow_loopback:
            return "localhost is a loopback address (set capture.allow_loopback_upstreams)"
        return None
    return upstream_problem(ip, allow_loopback=allow_loopback, allow_private=allow_private)


class UpstreamFailure(Exception):
    """The upstream could not be reached or broke the exchange; ``status`` is the answer to give."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _timed_out(route: str, what: str) -> UpstreamFailure:
    return UpstreamFailure(f"upstream {route} timed out ({what})", 504)


def _unreachable(route: str, what: str) -> UpstreamFailure:
    return UpstreamFailure(f"upstream {route} unreachable ({what})", 502)


class Origin:
    """Where a route's requests go: scheme, host, port, and the bytes every request needs."""

    __slots__ = ("base_path", "host", "host_header", "key", "port", "tls")

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        name = self.host.encode("idna") if ":" not in self.host else b"[" + self.host.encode() + b"]"
        self.host_header = name if parts.port is None else name + b":" + str(parts.port).encode()
        self.base_path = quote(parts.path.rstrip("/"), safe="/%:@!$&'()*+,;=~").encode("ascii")
        self.key = (self.tls, self.host, self.port)


class Connection(asyncio.Protocol):
    """One upstream connection; carries one exchange at a time, parsed by httptools as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.open = True  # False once the upstream closed or the connection was lost
        self.busy = False
        self.idle_since = 0.0
        self.waiter: asyncio.Future[bool] | None = None
        self.begin(head=False)

    def begin(self, *, head: bool) -> None:
        """Reset the per-exchange state before a request is written."""
        self.head = head
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.headers_done = False
        self.interim = False  # inside a 1xx response, which is skipped
        self.framed = False  # the body has a length or is chunked (else it runs to EOF)
        self.complete = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: str | None = None  # what broke, for the failure message
        self.interrupted = False  # the body's reader has gone: stop waiting for more of it

    # -- asyncio callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:  # bytes nobody asked for: the connection is not reusable
            self.open = False
            self.transport.close()  # type: ignore[union-attr]
            return
        if not self.headers_done:
            self.header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken("ProtocolUpgrade")
        except httptools.HttpParserError:
            self._broken("RemoteProtocolError")
        else:
            if not self.headers_done and self.header_bytes > MAX_HEADER_BYTES:
                self._broken("ResponseHeadersTooLarge")
            elif self.buffered > MAX_READ_AHEAD and not self.paused and not self.complete:
                self.paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
        self._wake()

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    # -- httptools callbacks --------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []
        self.interim = False
        self.framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:  # no HTTP status: nothing that could be relayed to the client
            self._broken("InvalidStatus")
            return
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: not the answer
            self.interim = True
            return
        self.status = status
        self.headers_done = True
        if self.head or status in (204, 304):
            self.framed = True
        if self.head:  # no body follows, whatever the headers say; the parser cannot be told
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if not self.head:
            self.chunks.append(body)
            self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive() and not self.head

    # -- helpers ------------------------------------------------------------------
    def _broken(self, what: str) -> None:
        self.error = self.error or what
        self.open = False
        self.transport.close()  # type: ignore[union-attr]

    def _ended(self) -> None:
        self.open = False
        if self.busy and not self.complete and self.error is None:
            if self.headers_done and not self.framed:  # a body delimited by the end of the connection
                self.complete = True
            else:
                self.error = "RemoteProtocolError"  # closed before the whole response came
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(True)

    async def wait(self, timeout: float) -> bool:
        """Wait for the next upstream bytes or the end; False when ``timeout`` passed first."""
        fut: asyncio.Future[bool] = self.loop.create_future()
        self.waiter = fut
        timer = self.loop.call_later(timeout, _expire, fut)
        try:
            return await fut
        finally:
            timer.cancel()
            self.waiter = None

    def reusable(self, now: float) -> bool:
        t = self.transport
        return self.open and t is not None and not t.is_closing() and now - self.idle_since < KEEPALIVE_EXPIRY_S


def _readable(transport: asyncio.Transport) -> bool:
    """Whether an idle connection's socket has bytes or an end the event loop has not handled yet.

    An idle connection should have nothing to read: anything there (most often the upstream
    closing it after its keep-alive timeout) means it cannot carry the next request.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        return bool(select.select([sock.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(False)


class UpstreamResponse:
    """Status and headers (names lower-cased) of an upstream answer; its body is read with :meth:`next_chunk`."""

    __slots__ = ("conn", "headers", "origin", "pool", "released", "route", "status")

    def __init__(self, pool: UpstreamPool, origin: Origin, conn: Connection, route: str) -> None:
        self.pool = pool
        self.origin = origin
        self.conn = conn
        self.route = route
        self.status = conn.status
        self.headers = conn.headers
        self.released = False

    @property
    def complete(self) -> bool:
        """The whole body has arrived and nothing is left to read."""
        c = self.conn
        return c.complete and not c.chunks

    async def next_chunk(self) -> bytes | None:
        """The body bytes that arrived since the last call (waiting for some), None at the end of the body."""
        c = self.conn
        while True:
            if c.interrupted:
                return None
            chunks = c.chunks
            if chunks:
                c.chunks = []
                c.buffered = 0
                if c.paused:
                    c.paused = False
                    c.transport.resume_reading()  # type: ignore[union-attr]
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if c.complete:
                return None
            if c.error is not None:
                raise _unreachable(self.route, c.error)
            if not await c.wait(self.pool.read_timeout):
                raise _timed_out(self.route, "ReadTimeout")

    def interrupt(self) -> None:
        """End the body early: a :meth:`next_chunk` waiting for upstream bytes returns None at once.

        Called when the agent hangs up in the middle of a stream: an upstream that pauses (a model
        thinking) would otherwise hold the relay, and the connection, until its next bytes came.
        """
        if not self.released:  # a released connection may already carry another exchange
            self.conn.interrupted = True
            self.conn._wake()

    async def read(self) -> bytes:
        parts: list[bytes] = []
        while (chunk := await self.next_chunk()) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        """Give the connection back for the next request when its exchange is over, else close it."""
        if self.released:
            return
        self.released = True
        self.pool.release(self.origin, self.conn)


class UpstreamPool:
    """Kept-alive upstream connections by origin; every new connection goes through the SSRF guard."""

    def __init__(self, *, allow_loopback: bool, allow_private: bool, timeout: float) -> None:
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.connect_timeout = min(10.0, timeout)
        self.read_timeout = timeout
        self.pool_timeout = timeout
        self.ssl_context = ssl.create_default_context(cafile=certifi.where())
        self.idle: dict[tuple[bool, str, int], deque[Connection]] = {}
        self.idle_count = 0
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.closed = False

    async def addresses(self, host: str) -> list[IPAddress]:
        """The checked addresses to try for ``host``; raises :class:`UpstreamFailure` (403) when refused."""
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = await asyncio.to_thread(check_addresses, host, 0, allow_private=True)
            except SSRFError as exc:
                raise UpstreamFailure(REFUSED_PREFIX + str(exc), 403) from None
        for ip in addresses:
            problem = upstream_problem(ip, allow_loopback=self.allow_loopback, allow_private=self.allow_private)
            if problem:
                raise UpstreamFailure(f"{REFUSED_PREFIX}host {host!r}: {problem}", 403)
        return addresses

    async def _connect(self, origin: Origin, route: str) -> Connection:
        loop = asyncio.get_running_loop()
        last = "ConnectError"
        try:
            async with asyncio.timeout(self.connect_timeout):
                for ip in await self.addresses(origin.host):
                    try:
                        _, conn = await loop.create_connection(
                            lambda: Connection(loop),
                            str(ip),
                            origin.port,
                            ssl=self.ssl_context if origin.tls else None,
                            server_hostname=origin.host if origin.tls else None,
                        )
                        return conn
                    except ssl.SSLError:
                        last = "TLSError"
                    except OSError:
                        last = "ConnectError"
        except TimeoutError:
            raise _timed_out(route, "ConnectTimeout") from None
        raise _unreachable(route, last)

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self.idle.get(origin.key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            self.idle_count -= 1
            if conn.reusable(now) and not _readable(conn.transport):  # type: ignore[arg-type]
                return conn
            conn.transport.close()  # type: ignore[union-attr]
        return None

    async def send(
        self, origin: Origin, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes, route: str
    ) -> UpstreamResponse:
        """The upstream's status and headers; the body follows through the response (then ``aclose()``)."""
        if self.closed:
            raise _unreachable(route, "PoolClosed")
        slots = self.slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise _timed_out(route, "PoolTimeout") from None
        else:
            await slots.acquire()
        conn: Connection | None = None
        try:
            conn = self._take_idle(origin) or await self._connect(origin, route)
            conn.busy = True
            conn.begin(head=method == "HEAD")
            head = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
            for k, v in headers:
                head += (k, b": ", v, b"\r\n")
            head.append(b"\r\n")
            small = len(body) < 65536
            if small:
                head.append(body)
            try:
                conn.transport.write(b"".join(head))  # type: ignore[union-attr]
                if not small:
                    conn.transport.write(body)  # type: ignore[union-attr]
            except (OSError, RuntimeError):  # the transport went away under us
                raise _unreachable(route, "WriteError") from None
            while not conn.headers_done:
                if conn.error is not None:
                    raise _unreachable(route, conn.error)
                if not conn.open:
                    raise _unreachable(route, "RemoteProtocolError")
                if not await conn.wait(self.read_timeout):
                    raise _timed_out(route, "ReadTimeout")
        except BaseException:
            if conn is not None and conn.busy:
                self.release(origin, conn)  # closes it: the exchange did not finish
            else:
                slots.release()
            raise
        return UpstreamResponse(self, origin, conn, route)

    def release(self, origin: Origin, conn: Connection) -> None:
        """The end of an exchange: keep the connection for the next request when it can serve one."""
        if not conn.busy:
            return
        conn.busy = False
        self.slots.release()
        if (
            conn.complete
            and conn.keep_alive
            and conn.error is None
            and conn.open
            and not self.closed
            and self.idle_count < MAX_IDLE
        ):
            conn.chunks = []
            if conn.paused:
                conn.paused = False
                conn.transport.resume_reading()  # type: ignore[union-attr]
            now = conn.idle_since = time.monotonic()
            idle = self.idle.setdefault(origin.key, deque())
            while idle and not idle[0].reusable(now):  # the oldest first: expired or closed by the upstream
                stale = idle.popleft()
                self.idle_count -= 1
                if stale.transport is not None:
                    stale.transport.close()
            idle.append(conn)
            self.idle_count += 1
            return
        conn.open = False
        if conn.transport is not None:
            conn.transport.close()

    async def aclose(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self.idle.clear()
        self.idle_count = 0
