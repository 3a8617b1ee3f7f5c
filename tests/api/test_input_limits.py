"""Every input a client controls is bounded before it costs the server memory, time or a
connection slot; what breaks a bound gets a 4xx naming the input and the rule.

Bodies go over raw sockets in chunked encoding (no Content-Length to trust) and the client
stops as soon as the server answers, so "refused before it was read whole" is observed, not
inferred. Gzip bombs are built from a zero block, compressed as they are sent. Memory is the
resident size of this process, which runs the server in a thread (the client's own buffers
stay a few MiB). The request head, the time a client may take, and WebSocket control frames
are the transport's (``api.serving``): those tests run once, on SQLite, against the main
listener and the second AOP listener.
"""

from __future__ import annotations

import base64
import functools
import os
import select
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, free_port, run_server

MiB = 1024 * 1024
GROWTH_LIMIT = 100 * MiB  # what one hostile request may add to the server's resident memory
ME = psutil.Process()


def rss() -> int:
    return ME.memory_info().rss


# -- raw HTTP ------------------------------------------------------------------------------------


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def connect(url: str, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    return sock


def answered(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def send_until_answered(sock: socket.socket, pieces: Iterable[bytes]) -> int:
    """Send ``pieces`` until the server answers (or stops reading); the bytes sent by then."""
    sent = 0
    try:
        for piece in pieces:
            if answered(sock):
                break
            sock.sendall(piece)
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the server answered and closed, or stopped reading
    return sent


def read_answer(sock: socket.socket, timeout: float = 15) -> tuple[int, Any]:
    """Status and body (JSON when it parses) of the next response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before an answer: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    length = int(headers.get(b"content-length", b"0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    try:
        return int(lines[0].split()[1]), orjson.loads(body[:length])
    except orjson.JSONDecodeError:
        return int(lines[0].split()[1]), body[:length]


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed ``sock`` (what it sent first is read and dropped), or None."""
    start = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - start < within:
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def chunked(method: str, path: str, total: int, *, encoding: str | None = None) -> Iterator[bytes]:
    """A request whose body is ``total`` bytes of spaces, in chunks, with no Content-Length."""
    extra = f"Content-Encoding: {encoding}\r\n" if encoding else ""
    yield (
        f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    block = b" " * (256 * 1024)
    for _ in range(total // len(block)):
        yield b"%x\r\n" % len(block) + block + b"\r\n"
    yield b"0\r\n\r\n"


@functools.cache
@functools.cache
def gzip_bomb(inflated: int) -> tuple[bytes, ...]:
    """``inflated`` bytes of zeros as one gzip member, compressed a MiB at a time: what is kept
    is the compressed form (about a thousandth of it), never the inflated one. Made once, before
    any request starts: compressing a GiB takes seconds, and a client pausing that long in the
    middle of a body is one the server rightly drops as stalled."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    pieces = [packer.compress(zeros) for _ in range(inflated // MiB)]
    return (*(p for p in pieces if p), packer.flush())


def chunks_of(pieces: Iterable[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"


# -- request bodies, every route that reads one -------------------------------------------------

# (method, path, limit): each route's body cap in bytes, before any gzip decoding
BODY_ROUTES = [
    ("POST", "/api/v1/ingest", 10 * MiB),
    ("POST", "/events", 4 * MiB),
    ("POST", "/v1/traces", 10 * MiB),
    ("POST", "/v1/logs", 10 * MiB),
    ("POST", "/api/filters/process", 64 * 1024),
    ("POST", "/api/filters/pid", 64 * 1024),
    ("POST", "/api/v1/alerts/A-1/feedback", 64 * 1024),
    ("PATCH", "/api/v1/sigma/rules/AW-TOOL-001", 64 * 1024),
    ("POST", "/api/v1/sigma/rules", 2 * MiB),
    ("POST", "/api/v1/auth/login", 16 * 1024),
    ("POST", "/api/v1/auth/refresh", 16 * 1024),
    ("POST", "/api/v1/auth/logout", 16 * 1024),
    ("PUT", "/api/v1/users/me/password", 16 * 1024),
    ("POST", "/api/v1/users", 16 * 1024),
    ("PUT", "/api/v1/users/u-1", 16 * 1024),
    ("POST", "/api/v1/api-keys", 16 * 1024),
    ("POST", "/api/v1/rbac/roles", 16 * 1024),
    ("PUT", "/api/v1/rbac/roles/r-1", 16 * 1024),
    ("POST", "/api/v1/rbac/permissions", 16 * 1024),
    ("PUT", "/api/v1/rbac/permissions/p-1", 16 * 1024),
    ("PUT", "/api/settings", 64 * 1024),
    # read whole before any upstream is contacted; over the cap nothing leaves the machine
    ("POST", "/gateway/openai/v1/chat/completions", 32 * MiB),
]


@pytest.mark.parametrize(("method", "path", "limit"), BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES])
def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(
    open_server: RunningServer, method: str, path: str, limit: int
) -> None:
    before = rss()
    with connect(open_server.url) as sock:
        sent = send_until_answered(sock, chunked(method, path, limit + 32 * MiB))
        status, body = read_answer(sock)
    assert status == 413, body
    assert body["error"]["message"] == f"body: larger than {limit} bytes"
    # What the client got out past the limit before the answer came: at most the loopback's
    # socket buffers (about 10 MiB when the kernel has grown them, on a loaded machine) plus
    # what the server read before it refused; a server that read on to the end took all 32.
    assert sent < limit + 16 * MiB, f"the server answered only after {sent} bytes"
    assert rss() - before < GROWTH_LIMIT


JSON_BODY_ROUTES = [
    ("POST", "/api/filters/process"),
    ("POST", "/api/filters/pid"),
    ("POST", "/api/v1/alerts/A-1/feedback"),
    ("PATCH", "/api/v1/sigma/rules/AW-TOOL-001"),
    ("POST", "/api/v1/sigma/rules"),
    ("POST", "/api/v1/auth/login"),
    ("PUT", "/api/settings"),
]
BAD_JSON = {
    "nested 5000 deep": b"[" * 5000 + b"]" * 5000,
    "cut short": b'{"name": "x',
    "not JSON": b"\x1f\x8b\x08 not json",
}


@pytest.mark.parametrize(("method", "path"), JSON_BODY_ROUTES, ids=[f"{m} {p}" for m, p in JSON_BODY_ROUTES])
@pytest.mark.parametrize("kind", list(BAD_JSON))
def test_a_body_that_is_not_json_is_named_as_the_body(
    open_server: RunningServer, method: str, path: str, kind: str
) -> None:
    with open_server.client() as c:
        r = c.request(method, path, content=BAD_JSON[kind], headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("body: ") and "JSON" in message, message


@pytest.mark.parametrize(
    ("path", "limit"),
    [("/api/v1/ingest", 10 * MiB), ("/events", 4 * MiB), ("/v1/traces", 10 * MiB), ("/v1/logs", 10 * MiB)],
)
def test_a_gzip_bomb_is_inflated_no_further_than_the_limit(open_server: RunningServer, path: str, limit: int) -> None:
    """1 GiB of zeros, about 1 MiB on the wire: refused once decoding passes the cap."""
    bomb = gzip_bomb(1024 * MiB)
    before = rss()
    with connect(open_server.url, timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        send_until_answered(sock, chunks_of(bomb))
        status, body = read_answer(sock, timeout=30)
    assert status == 413, body
    assert body["error"]["message"] == f"body: larger than {limit} bytes after gzip decoding"
    assert rss() - before < GROWTH_LIMIT


class PeakRss:
    """The highest resident size seen while the block runs (sampled every 2 ms)."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def tiny_values(size: int, unit: bytes = b"{}") -> bytes:
    """A JSON array of ``size`` bytes made of ``unit`` (the shape that parses into the most objects)."""
    return b"[" + b",".join([unit] * ((size - 2) // (len(unit) + 1))) + b"]"


JSON_BOMBS = {
    "/api/v1/ingest": tiny_values(9 * MiB),
    "/events": tiny_values(4 * MiB - 64),
    "/v1/traces": b'{"resourceSpans":' + tiny_values(9 * MiB) + b"}",
    "/v1/logs": b'{"resourceLogs":' + tiny_values(9 * MiB) + b"}",
}


@pytest.mark.parametrize("path", list(JSON_BOMBS))
def test_json_of_tiny_values_is_refused_before_it_is_parsed(open_server: RunningServer, path: str) -> None:
    """``{}`` is 2 bytes sent and a 64-byte object parsed: under the body cap, a whole request of
    them would make hundreds of MiB of objects."""
    with open_server.client() as c, PeakRss() as mem:
        r = c.post(path, content=JSON_BOMBS[path], headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["message"] == "body: more than 1000000 JSON objects and arrays in one request"
    assert mem.growth < GROWTH_LIMIT, f"grew {mem.growth >> 20} MiB"


def test_long_arrays_of_numbers_are_not_taken_for_a_bomb(open_server: RunningServer) -> None:
    """1.2 million numbers (eight series of 150,000) in 2.4 MB: many items, but each parses to
    about its own size, so the body is taken."""
    series = [{"event_type": "capture.raw", "data": {"samples": [7] * 150_000}} for _ in range(8)]
    body = b"\n".join(orjson.dumps(e) for e in series)
    assert body.count(b",") > 1_000_000
    with open_server.client() as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 8


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (lengths here fit in four varint bytes)."""
    size, length = len(payload), b""
    while True:
        low, size = size & 0x7F, size >> 7
        length += bytes([low | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + payload


EMPTY = 4 * MiB  # bytes of two-byte empty messages in each request
SPAN_HEAD = field(1, bytes(16)) + field(2, bytes(8)) + field(5, b"x")  # trace id, span id, name
PROTOBUF_BOMBS = {
    "empty resourceSpans": field(1, b"") * (EMPTY // 2),
    "empty spans": field(1, field(2, field(2, b"") * (EMPTY // 2))),
    "empty attributes": field(1, field(2, field(2, SPAN_HEAD + field(9, b"") * (EMPTY // 2)))),
}


@pytest.mark.parametrize("kind", list(PROTOBUF_BOMBS))
def test_protobuf_of_tiny_messages_is_refused_before_it_is_parsed(open_server: RunningServer, kind: str) -> None:
    """An empty message is 2 bytes sent and 50 to 200 bytes parsed."""
    with open_server.client() as c, PeakRss() as mem:
        r = c.post("/v1/traces", content=PROTOBUF_BOMBS[kind], headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["message"].startswith("body: more than 500000 protobuf messages in one request")
    assert mem.growth < GROWTH_LIMIT, f"grew {mem.growth >> 20} MiB"


# -- the transport: request heads, slow clients, WebSocket control frames -------------------------


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """A server on SQLite with the second AOP listener on; yields it and that listener's URL."""
    data: Path = tmp_path_factory.mktemp("wire")
    compat = free_port()
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'agentwatch.db'}",
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        aop={"compat_listener": True, "compat_port": compat},
    )
    with run_server(settings) as srv:
        yield srv, f"http://{settings.host}:{compat}"


@pytest.fixture(params=["main", "aop"])
def listener(request: pytest.FixtureRequest, listeners: tuple[RunningServer, str]) -> tuple[str, str]:
    """The URL of one listener and a path it serves."""
    srv, compat = listeners
    return (srv.url, "/api/events") if request.param == "main" else (compat, "/sessions")


def big_header(size: int) -> Iterator[bytes]:
    yield b"X-Padding: "
    for _ in range(size // 65536):
        yield b"a" * 65536
    yield b"\r\n\r\n"


def many_headers(count: int) -> Iterator[bytes]:
    for start in range(0, count, 1000):
        yield b"".join(b"X-H%d: v\r\n" % i for i in range(start, start + 1000))
    yield b"\r\n"


def long_query(repeats: int) -> Iterator[bytes]:
    for _ in range(repeats // 1000):
        yield b"&type=a" * 1000
    yield b" HTTP/1.1\r\nHost: t\r\n\r\n"


HEADS = {
    "one header of 64 MiB": lambda path: [f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode(), *big_header(64 * MiB)],
    "a million headers": lambda path: [f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode(), *many_headers(1_000_000)],
    "?type=a 1,000,000 times": lambda path: [f"GET {path}?limit=1".encode(), *long_query(1_000_000)],
}


@pytest.mark.parametrize("kind", list(HEADS))
def test_an_oversized_request_head_is_refused_before_it_is_read_whole(listener: tuple[str, str], kind: str) -> None:
    url, path = listener
    before = rss()
    with connect(url) as sock:
        sent = send_until_answered(sock, HEADS[kind](path))
        status, body = read_answer(sock)
    assert status == 431, body
    assert body["error"]["message"] == "request head: the request line and headers are larger than 65536 bytes"
    assert sent < 4 * MiB, f"the server answered only after {sent} bytes"
    assert rss() - before < GROWTH_LIMIT


def test_a_query_repeated_within_the_head_limit_is_answered(listener: tuple[str, str]) -> None:
    url, path = listener
    with connect(url) as sock:
        sock.sendall(f"GET {path}?limit=1{'&limit=1' * 7000} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, body = read_answer(sock)
    assert status == 200, body


def test_clients_that_stall_are_cut_off(listeners: tuple[RunningServer, str]) -> None:
    """A connection that sends nothing, a head that never ends, a body that stops, and the rest of
    a refused body sent on and on: each is closed within its timeout (10 s; 5 s after an answer)."""
    srv, _ = listeners
    idle = connect(srv.url)
    partial = connect(srv.url)
    partial.sendall(b"GET /api/events HTTP/1.1\r\nHost: t\r\n")
    stalled = connect(srv.url)
    stalled.sendall(b"POST /api/filters/process HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
    refused = connect(srv.url)
    refused.sendall(b"".join(list(chunked("POST", "/api/v1/auth/login", 256 * 1024))[:-1]))
    status, body = read_answer(refused)
    assert status == 413, body
    sockets = [idle, partial, stalled, refused]
    try:
        start = time.monotonic()
        while time.monotonic() - start < 6.5:  # the refused body goes on, a byte a second
            try:
                refused.sendall(b"1\r\n \r\n")
            except OSError:
                break  # closed by the server
            time.sleep(1)
        assert closed_by_server(refused, within=1) is not None, "a refused body was drained for more than 5 s"
        for sock in (idle, stalled):
            assert closed_by_server(sock, within=6) is not None
        status, body = read_answer(partial, timeout=6)
        assert status == 408, body
        assert body["error"]["message"] == "request head: not received whole within 10 seconds"
    finally:
        for sock in sockets:
            sock.close()


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (mask of zeros: the payload goes as is)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + b"\0\0\0\0" + payload


def ws_open(url: str, path: str) -> socket.socket:
    sock = connect(url)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


@pytest.mark.parametrize("path", ["/ws/events", "/ws/stats", "/api/v1/ws"])
def test_pings_from_a_client_that_reads_nothing_do_not_pile_up(listeners: tuple[RunningServer, str], path: str) -> None:
    """Every ping is answered with a pong; a client that never reads them must not make the
    server keep them all: past a bound the server stops reading that client."""
    srv, _ = listeners
    before = rss()
    with ws_open(srv.url, path) as sock:
        sock.settimeout(2)
        pings = ws_frame(0x9, b"p" * 125) * 2000
        sent = 0
        try:
            while sent < 128 * MiB:
                sock.sendall(pings)
                sent += len(pings)
        except TimeoutError:
            pass  # the server stopped reading us: what we want
        grown = rss() - before
    # what the kernel buffers on both ends is far less; the rest would be held by the server
    assert sent < 64 * MiB, f"the server read {sent >> 20} MiB of pings from a client that reads nothing"
    assert grown < 32 * MiB, f"{sent >> 20} MiB of pings grew the server by {grown >> 20} MiB"


def test_a_websocket_message_over_1_mib_closes_with_message_too_big(listeners: tuple[RunningServer, str]) -> None:
    srv, _ = listeners
    with ws_open(srv.url, "/ws/events") as sock:
        sock.sendall(ws_frame(0x1, b" " * (MiB + 1)))
        sock.settimeout(10)
        frame = sock.recv(4096)
    assert frame[0] == 0x88, frame  # close
    assert struct.unpack("!H", frame[2:4])[0] == 1009
