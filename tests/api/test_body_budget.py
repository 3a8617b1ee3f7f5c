"""Request bodies held at once are bounded server-wide, and a body must keep coming at a
minimum rate.

Bodies are held open over raw sockets: the request head and part of the body are sent and
the socket is kept, so the route is waiting for the rest while the test sends other
requests. The budget the server holds is read from the running server (``budget_of``) only
to wait until the held requests have reached the route; what is asserted is what clients see.
"""

from __future__ import annotations

import gzip
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from agentwatch.api import serving
from agentwatch.api.body_budget import budget_of
from agentwatch.config import Settings
from tests.api.test_input_limits import answered, chunked, connect, send_until_answered
from tests.support.server import RunningServer, free_port, run_server

KiB = 1024
CAP = 64 * KiB  # ingest.max_body_bytes on the test server
HELD = CAP - 1  # a held body: all of it sent but its last byte
BUDGET = 160 * KiB  # two held ingest bodies (128 KiB) leave 32 KiB
INGEST = "/api/v1/ingest"
OVER_BUDGET = f"body: the server holds too many request bodies at once (budget {BUDGET} bytes); retry later"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    """A server with a small budget and the AOP listener on; yields it and that listener's URL."""
    data: Path = tmp_path_factory.mktemp("budget")
    compat = free_port()
    settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'agentwatch.db'}",
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        ingest={"max_body_bytes": CAP, "max_body_bytes_in_flight": BUDGET},
        aop={"compat_listener": True, "compat_port": compat},
        # a gateway route that leads nowhere: a body read past the budget never leaves the machine
        capture={"routes": {"local": {"provider": "openai", "base_url": "http://127.0.0.1:9"}}},
    )
    with run_server(settings) as srv:
        yield srv, f"http://{settings.host}:{compat}"


@pytest.fixture
def srv(servers: tuple[RunningServer, str], monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The server, with the slow-body limits out of the way of bodies held on purpose."""
    monkeypatch.setattr(serving, "BODY_IDLE_S", 120.0)
    monkeypatch.setattr(serving, "BODY_GRACE_S", 120.0)
    server, _ = servers
    wait_until_held(server, 0)
    return server


def event(name: str) -> dict[str, Any]:
    return {"event_type": "process.exec", "process": {"pid": 4242, "name": name}, "data": {"exe": "/bin/true"}}


def padded(name: str, size: int) -> bytes:
    """One event as JSON, padded with spaces to ``size`` bytes."""
    doc = orjson.dumps(event(name))
    return doc + b" " * (size - len(doc))


def head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{extra}Content-Length: {length}\r\n\r\n"
    ).encode()


def hold(url: str, body: bytes, path: str = INGEST) -> socket.socket:
    """A request whose head and all of ``body`` but its last byte are sent."""
    sock = connect(url)
    sock.sendall(head(path, len(body)) + body[:-1])
    return sock


def chunked_start(size: int) -> bytes:
    """The head of an ingest request without Content-Length and ``size`` bytes of its body, in
    4 KiB chunks; the body does not end."""
    piece = b"%x\r\n" % (4 * KiB) + b" " * (4 * KiB) + b"\r\n"
    return next(chunked("POST", INGEST, 0)) + piece * (size // (4 * KiB))


def held(srv: RunningServer) -> int:
    return budget_of(srv.aw).held


def wait_until_held(srv: RunningServer, expected: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while held(srv) != expected:
        assert time.monotonic() < deadline, f"the server holds {held(srv)} body bytes, not {expected}"
        time.sleep(0.01)


def answer(sock: socket.socket, timeout: float = 15) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of the next response on ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data[:200]!r}"
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the answer"
        body += chunk
    return int(lines[0].split()[1]), headers, orjson.loads(body)


def post(url: str, body: bytes, path: str = INGEST, extra: str = "") -> tuple[int, dict[str, str], Any]:
    with connect(url) as sock:
        sock.sendall(head(path, len(body), extra) + body)
        return answer(sock)


def assert_over_budget(reply: tuple[int, dict[str, str], Any]) -> None:
    status, headers, body = reply
    assert status == 503, body
    assert body["error"] == {"code": "UNAVAILABLE", "message": OVER_BUDGET, "details": None}
    assert headers["retry-after"] == "1"


def stored_named(srv: RunningServer, name: str) -> int:
    with srv.client() as c:
        events = c.get("/api/events", params={"limit": 1000}).json()["events"]
    return sum(1 for e in events if e.get("process", {}).get("name") == name)


def refusals(srv: RunningServer) -> float:
    with srv.client() as c:
        text = c.get("/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("agentwatch_http_bodies_over_budget_total ")]
    return float(line.split()[1])


# -- the budget ------------------------------------------------------------------------------------


def test_a_request_past_the_budget_gets_503_until_held_bodies_are_answered(
    srv: RunningServer, servers: tuple[RunningServer, str]
) -> None:
    _, aop_url = servers
    refused_before = refusals(srv)
    gone = hold(srv.url, padded("held-gone", CAP))
    finished = hold(srv.url, padded("held-finished", CAP))
    try:
        wait_until_held(srv, 2 * HELD)  # both routes are reading: 128 of the 160 KiB are taken

        # refused once what it sent passes what is left
        assert_over_budget(post(srv.url, padded("refused", 40 * KiB)))
        # no Content-Length: refused once its chunks pass the budget (40 KiB, under the cap)
        with connect(srv.url) as sock:
            sock.sendall(chunked_start(40 * KiB))
            assert_over_budget(answer(sock))
        # the AOP listener shares the server's budget
        assert_over_budget(post(aop_url, padded("refused", 40 * KiB), path="/events"))
        # what fits in what is left is taken
        status, _, body = post(srv.url, padded("fits", 8 * KiB))
        assert status == 200 and body["accepted"] == 1, body

        gone.close()  # the client goes away mid-body: its 64 KiB come back
        wait_until_held(srv, HELD)
        finished.sendall(padded("held-finished", CAP)[-1:])
        status, _, body = answer(finished)
        assert status == 200 and body["stored"] == 1, body
        wait_until_held(srv, 0)

        status, _, body = post(srv.url, padded("refused", 40 * KiB))  # the request refused before
        assert status == 200 and body["stored"] == 1, body
    finally:
        gone.close()
        finished.close()
    assert refusals(srv) == refused_before + 3
    assert stored_named(srv, "refused") == 1  # the refused requests stored nothing; the retry did
    assert stored_named(srv, "held-gone") == 0


def test_gzip_bodies_count_inflated(srv: RunningServer) -> None:
    inflated = padded("gzipped", 60 * KiB)
    small = gzip.compress(inflated)
    assert len(small) < 2 * KiB
    holders = [hold(srv.url, padded("held", CAP)) for _ in range(2)]
    try:
        wait_until_held(srv, 2 * HELD)
        assert_over_budget(post(srv.url, small, extra="Content-Encoding: gzip\r\n"))
    finally:
        for sock in holders:
            sock.close()
    wait_until_held(srv, 0)
    status, _, body = post(srv.url, small, extra="Content-Encoding: gzip\r\n")
    assert status == 200 and body["stored"] == 1, body


def refused_by_route(url: str) -> Iterator[tuple[str, int]]:
    """Requests a route refuses after it started reading the body: (what, status)."""
    with connect(url) as sock:  # no Content-Length, past the cap as it arrives
        send_until_answered(sock, chunked("POST", INGEST, 4 * CAP))
        yield "chunked over the cap", answer(sock)[0]
    yield "malformed JSON", post(url, b"{" + b" " * (10 * KiB), path="/api/filters/process")[0]
    yield "an encoding it does not take", post(url, padded("x", 10 * KiB), extra="Content-Encoding: br\r\n")[0]
    yield "gzip that is not", post(url, b"\x1f\x8b" + b" " * (10 * KiB), extra="Content-Encoding: gzip\r\n")[0]


def test_a_body_the_route_refused_gives_its_bytes_back(srv: RunningServer) -> None:
    outcomes = {}
    for what, status in refused_by_route(srv.url):
        outcomes[what] = status
        wait_until_held(srv, 0)
    assert outcomes == {
        "chunked over the cap": 413,
        "malformed JSON": 400,
        "an encoding it does not take": 415,
        "gzip that is not": 400,
    }
    # were a few KiB still counted, the 30 KiB next to two held bodies would be refused
    holders = [hold(srv.url, padded("held", CAP)) for _ in range(2)]
    try:
        wait_until_held(srv, 2 * HELD)
        status, _, body = post(srv.url, padded("after refusals", BUDGET - 2 * CAP - 2 * KiB))
        assert status == 200 and body["stored"] == 1, body
    finally:
        for sock in holders:
            sock.close()


def test_a_client_gone_mid_body_without_content_length_gives_its_bytes_back(srv: RunningServer) -> None:
    sock = connect(srv.url)
    sock.sendall(chunked_start(40 * KiB))
    wait_until_held(srv, 40 * KiB)
    sock.close()
    wait_until_held(srv, 0)


def test_a_body_larger_than_the_whole_budget_is_413(srv: RunningServer) -> None:
    """The gateway takes bodies up to 32 MiB: one above the budget could never be read."""
    status, headers, body = post(srv.url, b" " * (BUDGET + 1), path="/gateway/local/v1/chat/completions")
    assert status == 413, body
    assert body["error"]["message"] == (
        f"body: larger than the server's budget for request bodies held at once ({BUDGET} bytes)"
    )
    assert "retry-after" not in headers


def test_the_budget_must_hold_the_largest_ingest_body(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"ingest.max_body_bytes_in_flight: must be at least"):
        Settings(
            data_dir=tmp_path, ingest={"max_body_bytes": 20 * 1024 * KiB, "max_body_bytes_in_flight": 16 * 1024 * KiB}
        )
    with pytest.raises(ValidationError, match="max_body_bytes_in_flight"):
        Settings(data_dir=tmp_path, ingest={"max_body_bytes": 1024, "max_body_bytes_in_flight": 1024})
    assert Settings(data_dir=tmp_path).ingest.max_body_bytes_in_flight == 256 * 1024 * KiB


# -- bodies that drip --------------------------------------------------------------------------------


@pytest.fixture
def quick_watch(servers: tuple[RunningServer, str], monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    """The server with a 1-second grace (and a first look 1 second after a connection opens)."""
    monkeypatch.setattr(serving, "HEAD_TIMEOUT_S", 1.0)
    monkeypatch.setattr(serving, "BODY_GRACE_S", 1.0)
    return servers[0]


def closed_while_sending(sock: socket.socket, piece: bytes, every: float, within: float) -> float | None:
    """Send ``piece`` every ``every`` seconds; seconds until the server closed ``sock``, or None."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            if answered(sock):
                assert sock.recv(65536) == b"", "the server answered instead of closing"
                return time.monotonic() - start
            sock.sendall(piece)
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        time.sleep(every)
    return None


def test_a_body_that_drips_is_cut_off_after_the_grace(quick_watch: RunningServer) -> None:
    """A byte every 0.2 s never stops for the idle timeout, but averages 5 bytes a second."""
    with connect(quick_watch.url) as sock:
        sock.sendall(head(INGEST, 16 * KiB) + b"{")
        after = closed_while_sending(sock, b" ", every=0.2, within=8)
    assert after is not None, "a body dripping at 5 bytes a second was kept open"
    assert after >= serving.BODY_GRACE_S - 0.1, f"closed {after:.1f} s after the first byte, inside the grace"


def test_an_honest_slow_body_is_not_cut_off(quick_watch: RunningServer) -> None:
    """4 KiB a second (four times the minimum) for 3 seconds, three times the grace."""
    body = padded("honest", 12 * KiB)
    with connect(quick_watch.url) as sock:
        sock.sendall(head(INGEST, len(body)))
        for start in range(0, len(body), 256):
            sock.sendall(body[start : start + 256])
            time.sleep(1 / 16)
        status, _, reply = answer(sock)
    assert status == 200 and reply["stored"] == 1, reply


def test_a_slow_client_holds_only_what_it_has_sent(srv: RunningServer) -> None:
    """Declaring a body does not take the budget: ten clients that each declare the largest
    body and send 1 KiB of it leave room for an honest request as large as the rest."""
    holders = [hold(srv.url, padded(f"slow-{i}", KiB + 1)) for i in range(2)]
    declared = []
    try:
        for _ in range(10):
            sock = connect(srv.url)
            sock.sendall(head(INGEST, CAP) + b" " * KiB)
            declared.append(sock)
        wait_until_held(srv, 12 * KiB)
        status, _, body = post(srv.url, padded("honest", CAP))
        assert status == 200 and body["stored"] == 1, body
    finally:
        for sock in holders + declared:
            sock.close()
    wait_until_held(srv, 0)
