"""Alert outputs against receivers that misbehave: rate limits, errors, resets, DNS rebinding.

A receiver here is a scripted HTTP server (an asyncio server on loopback) that answers each
request with the next answer of its script. DNS rebinding is played by the outside resolver
(``socket.getaddrinfo``) answering one name differently at save time and at delivery.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from agentwatch.notify import build_output, deliver

ATTEMPTS = 3  # the documented bound on deliveries of one message
RESET = b""  # in a script: reset the connection (TCP RST) instead of answering


def answer(status: int, reason: str, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 {status} {reason}\r\n{head}Content-Length: 0\r\nConnection: close\r\n\r\n".encode()


OK = answer(204, "No Content")


class Receiver:
    """Records each request (arrival time, body) and gives it the next scripted answer."""

    def __init__(self, script: list[bytes]) -> None:
        self.script = list(script)
        self.connections = 0
        self.requests: list[tuple[float, bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            self.requests.append((time.monotonic(), await reader.readexactly(length)))
            reply = self.script.pop(0) if self.script else OK
            if reply == RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            writer.write(reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def receiver(host: str, script: list[bytes]) -> AsyncIterator[tuple[int, Receiver]]:
    recv = Receiver(script)
    server = await asyncio.start_server(recv.handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1], recv
    finally:
        server.close()
        await server.wait_closed()


def webhook(url: str) -> object:
    return build_output({"kind": "webhook", "url": url, "secret": "s1gn1ngS3cret"}, allow_private=True)


ALERT = {"id": "a-1", "type": "builtin", "rule_id": "R", "title": "t", "severity": 8, "severity_label": "high"}


async def test_a_rate_limited_delivery_is_sent_again_after_retry_after():
    """429 with ``Retry-After: 1``, then 503: the alert still arrives, the wait asked for is kept,
    and every attempt carries the same signed bytes."""
    host = "127.0.0.91"
    async with receiver(host, [answer(429, "Too Many Requests", "Retry-After: 1"), answer(503, "Unavailable")]) as (
        port,
        recv,
    ):
        [result] = await deliver([webhook(f"http://{host}:{port}/hook")], [ALERT], timeout=20)
    assert result["ok"], result
    assert len(recv.requests) == 3
    (t1, b1), (t2, b2), (_t3, b3) = recv.requests
    assert t2 - t1 >= 0.95  # Retry-After honoured
    assert b1 == b2 == b3


async def test_a_reset_connection_is_retried():
    host = "127.0.0.92"
    async with receiver(host, [RESET]) as (port, recv):
        [result] = await deliver([webhook(f"http://{host}:{port}/hook")], [ALERT], timeout=20)
    assert result["ok"], result
    assert len(recv.requests) == 2


@pytest.mark.parametrize(
    ("script", "attempts", "reason"),
    [
        ([answer(500, "Server Error")] * 10, ATTEMPTS, "receiver answered 500"),
        ([answer(429, "Too Many Requests", "Retry-After: 3600")], 1, "Retry-After of 3600 s"),
        ([answer(400, "Bad Request")], 1, "receiver answered 400"),
    ],
)
async def test_retries_are_bounded_and_a_long_retry_after_is_not_waited_for(script, attempts, reason):
    """A receiver that keeps failing gets a bounded number of attempts; one that asks for a wait
    longer than an output waits is not asked again early; a refusal (4xx) is final."""
    host = "127.0.0.93"
    async with receiver(host, script) as (port, recv):
        started = time.monotonic()
        [result] = await deliver([webhook(f"http://{host}:{port}/hook")], [ALERT], timeout=20)
        took = time.monotonic() - started
    assert result["ok"] is False and reason in result["error"], result
    assert len(recv.requests) == attempts
    assert took < 10


@pytest.mark.parametrize("rebound_to", ["127.0.0.94", "::ffff:127.0.0.94"])
async def test_a_name_rebound_to_a_refused_address_is_refused_at_delivery_naming_the_rule(monkeypatch, rebound_to):
    """The name resolved to a public address when the output was built, to loopback when the
    alert goes out: no packet reaches loopback, the failure says why, and it is not retried."""
    real = socket.getaddrinfo
    lookups: list[str] = []
    answers = {"saved": "93.184.215.14", "delivery": rebound_to}
    phase = "saved"

    def resolver(host, port, *args, **kwargs):
        if host != "hooks.rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(phase)
        ip = answers[phase]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
        return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    async with receiver("127.0.0.94", []) as (port, recv):
        out = build_output({"kind": "slack", "url": f"http://hooks.rebind.test:{port}/services/T/B/X"})
        phase = "delivery"
        [result] = await deliver([out], [ALERT], timeout=20)
    assert recv.connections == 0
    assert result["ok"] is False
    assert "SSRF guard" in result["error"] and "127.0.0.94 is a loopback address" in result["error"], result
    assert "/services/T/B/X" not in result["error"]
    assert lookups == ["saved", "delivery"]  # a refusal is final: no second attempt


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Team": "s\u00e9curit\u00e9"}, "headers.X-Team: must be a string of printable ASCII"),
        ({"Content-Encoding": "gzip"}, "headers.Content-Encoding: is reserved"),
    ],
)
def test_webhook_headers_that_cannot_be_sent_are_refused_when_saved(headers, message):
    """A header value httpx cannot encode would fail every delivery; a ``Content-*`` header would
    misdescribe the signed body (the README reserves them all)."""
    with pytest.raises(ValueError, match=message):
        build_output({"kind": "webhook", "url": "http://127.0.0.95/hook", "headers": headers}, allow_private=True)


async def test_a_name_that_does_not_resolve_for_a_moment_is_tried_again(monkeypatch):
    """A resolver failure at delivery is transient, unlike a refused address: the next attempt
    resolves (and checks) the name again and delivers."""
    real = socket.getaddrinfo
    failures: list[socket.gaierror] = []

    def resolver(host, port, *args, **kwargs):
        if host != "hooks.flaky.test":
            return real(host, port, *args, **kwargs)
        if failures:
            raise failures.pop()
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.96", port))]

    async with receiver("127.0.0.96", []) as (port, recv):
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        out = build_output({"kind": "webhook", "url": f"http://hooks.flaky.test:{port}/hook"}, allow_private=True)
        failures.append(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
        [result] = await deliver([out], [ALERT], timeout=20)
    assert result["ok"], result
    assert len(recv.requests) == 1
