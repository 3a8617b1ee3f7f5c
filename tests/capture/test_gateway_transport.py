"""The gateway's upstream client against a scripted raw HTTP/1.1 server on loopback.

Each test scripts the upstream's bytes exactly (framing, keep-alive, 1xx, bad or slow
answers) and checks what the pool makes of them, directly and through a running gateway.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509

from agentwatch.capture.gateway import transport
from agentwatch.capture.gateway.transport import REFUSED_PREFIX, Origin, UpstreamFailure, UpstreamPool
from tests.capture.conftest import gateway_settings, wait_events
from tests.support import certs
from tests.support.server import free_port, run_server

# what the script returns: (bytes to write, seconds to wait before writing) steps, then whether to hang up
Script = Callable[[dict[str, Any]], tuple[list[tuple[bytes, float]], bool]]


@dataclass
class RawUpstream:
    host: str
    port: int
    script: Script
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    tls: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.serve(reader, writer)
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
            pass  # the test is over, or the gateway hung up
        finally:
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *rest = head[:-4].split(b"\r\n")
            method, target, _ = line.split(b" ", 2)
            headers = {}
            for h in rest:
                k, _, v = h.partition(b":")
                headers[k.strip().lower().decode()] = v.strip().decode()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            req = {"method": method.decode(), "target": target.decode(), "headers": headers, "body": body}
            self.requests.append(req)
            steps, hang_up = self.script(req)
            for data, delay in steps:
                if delay:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
            if hang_up:
                return


@contextmanager
def raw_upstream(script: Script, host: str = "127.0.0.2", tls: ssl.SSLContext | None = None) -> Iterator[RawUpstream]:
    up = RawUpstream(host, free_port(host), script, tls=tls)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: list[asyncio.Server] = []

    async def main() -> None:
        server.append(await asyncio.start_server(up.handle, host, up.port, ssl=tls))
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(main(), loop).result(10)
    ready.wait(10)
    try:
        yield up
    finally:

        async def stop() -> None:
            server[0].close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0.05)  # the closed connections' transports finish closing

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def answer(status: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def pool(timeout: float = 10.0, **kw: Any) -> UpstreamPool:
    return UpstreamPool(allow_loopback=kw.get("allow_loopback", True), allow_private=False, timeout=timeout)


async def close(p: UpstreamPool) -> None:
    await p.aclose()
    await asyncio.sleep(0.01)  # the closed connections' transports finish closing before the loop ends


async def fetch(p: UpstreamPool, up: RawUpstream, method: str = "POST", target: bytes = b"/v1/x", body: bytes = b"{}"):
    origin = Origin(up.url)
    headers = [(b"host", origin.host_header), (b"content-length", str(len(body)).encode())]
    resp = await p.send(origin, method, target, headers, body, "test")
    try:
        return resp.status, {k.decode(): v for k, v in resp.headers}, await resp.read()
    finally:
        await resp.aclose()


def test_keep_alive_connection_serves_length_and_chunked_bodies():
    bodies = [b'{"a": 1}', b"data: one\n\n", b"data: two\n\n"]

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        if req["target"] == "/json":
            return [
                (answer("200 OK", [("Content-Type", "application/json"), ("Content-Length", "8")], bodies[0]), 0)
            ], False
        head = answer("200 OK", [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
        return [(head, 0), (chunked(bodies[1])[:-5], 0.05), (chunked(bodies[2]), 0.05)], False

    async def run(up: RawUpstream) -> None:
        p = pool()
        assert await fetch(p, up, target=b"/json") == (
            200,
            {"content-type": b"application/json", "content-length": b"8"},
            bodies[0],
        )
        status, headers, data = await fetch(p, up, target=b"/sse")
        assert status == 200 and headers["transfer-encoding"] == b"chunked"
        assert data == bodies[1] + bodies[2]  # de-chunked, byte for byte
        assert (await fetch(p, up, target=b"/json"))[2] == bodies[0]
        await close(p)

    with raw_upstream(script) as up:
        asyncio.run(run(up))
        assert up.connections == 1  # one kept-alive connection for the three exchanges
        assert [r["target"] for r in up.requests] == ["/json", "/sse", "/json"]
        assert up.requests[0]["body"] == b"{}"


def test_body_until_close_interim_answers_and_head():
    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        if req["target"] == "/eof":  # no length, no chunking: the body ends with the connection
            return [(answer("200 OK", [("Connection", "close")], b"part one, "), 0), (b"part two", 0.05)], True
        if req["target"] == "/continue":
            early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            return [
                (early, 0),
                (answer("201 Created", [("Content-Length", "2"), ("X-Final", "yes")], b"ok"), 0.02),
            ], False
        return [(answer("200 OK", [("Content-Length", "10")]), 0)], False  # HEAD: the length of a body not sent

    async def run(up: RawUpstream) -> None:
        p = pool()
        assert (await fetch(p, up, target=b"/eof"))[::2] == (200, b"part one, part two")
        status, headers, data = await fetch(p, up, target=b"/continue")
        assert (status, headers.get("x-final"), data) == (201, b"yes", b"ok")
        assert "link" not in headers  # the 103's headers are not the answer's
        status, headers, data = await fetch(p, up, method="HEAD", target=b"/head", body=b"")
        assert (status, headers["content-length"], data) == (200, b"10", b"")
        await close(p)

    with raw_upstream(script) as up:
        asyncio.run(run(up))
        assert up.connections == 2  # the close-delimited answer ended its connection


def test_connection_closed_by_the_upstream_while_idle_is_replaced():
    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        return [(answer("200 OK", [("Content-Length", "2")], b"ok"), 0)], True  # keep-alive, then hangs up anyway

    async def run(up: RawUpstream) -> None:
        p = pool()
        for _ in range(2):
            assert (await fetch(p, up))[2] == b"ok"
            await asyncio.sleep(0.1)  # the upstream's FIN arrives and is handled while the connection is idle
        for _ in range(2):
            assert (await fetch(p, up))[2] == b"ok"
            time.sleep(0.1)  # the FIN arrives while the event loop is busy: it is still unread at the next request
        await close(p)

    with raw_upstream(script) as up:
        asyncio.run(run(up))
        assert up.connections == 4


@pytest.mark.parametrize(
    ("steps", "timeout", "status", "what"),
    [
        ([], 0.3, 504, "ReadTimeout"),  # no answer at all
        ([(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (transport.MAX_HEADER_BYTES + 10), 0)], 5, 502, "HeadersTooLarge"),
        ([(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 0)], 5, 502, "RemoteProtocolError"),
        ([(b"HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\n{}", 0)], 5, 502, "InvalidStatus"),  # no HTTP status
        ([(b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\n{}", 0)], 5, 502, "InvalidStatus"),
    ],
)
def test_upstream_failures_before_the_answer(steps, timeout, status, what):
    async def run(up: RawUpstream) -> None:
        p = pool(timeout=timeout)
        with pytest.raises(UpstreamFailure) as err:
            await fetch(p, up)
        assert err.value.status == status and what in str(err.value)
        assert p.slots._value == transport.MAX_CONNECTIONS  # the slot was given back
        await close(p)

    with raw_upstream(lambda req: (steps, False)) as up:
        asyncio.run(run(up))


def test_upstream_failures_during_the_body_and_refusals():
    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        if req["target"] == "/cut":
            return [(answer("200 OK", [("Content-Length", "100")], b"only this"), 0)], True
        return [(answer("200 OK", [("Content-Length", "100")], b"and then nothing"), 0)], False

    async def run(up: RawUpstream) -> None:
        p = pool(timeout=0.3)
        with pytest.raises(UpstreamFailure) as err:
            await fetch(p, up, target=b"/cut")
        assert err.value.status == 502
        with pytest.raises(UpstreamFailure) as err:
            await fetch(p, up, target=b"/stall")
        assert err.value.status == 504
        assert not any(p.idle.values())  # broken exchanges do not go back to the pool
        refused = UpstreamPool(allow_loopback=False, allow_private=False, timeout=5)
        with pytest.raises(UpstreamFailure) as err:
            await fetch(refused, up)
        assert err.value.status == 403 and str(err.value).startswith(REFUSED_PREFIX)
        closed_port = RawUpstream("127.0.0.2", free_port("127.0.0.2"), script)
        with pytest.raises(UpstreamFailure) as err:
            await fetch(p, closed_port)
        assert err.value.status == 502 and "ConnectError" in str(err.value)
        await close(p)

    with raw_upstream(script) as up:
        asyncio.run(run(up))
        assert [r["target"] for r in up.requests] == ["/cut", "/stall"]  # the refused request never left


def test_slow_reader_pauses_the_upstream_and_gets_every_byte():
    size = 8 * transport.MAX_READ_AHEAD
    payload = bytes(range(256)) * (size // 256)

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        return [(answer("200 OK", [("Content-Length", str(size))]) + payload, 0)], False

    async def run(up: RawUpstream) -> None:
        p = pool()
        origin = Origin(up.url)
        resp = await p.send(origin, "GET", b"/big", [(b"host", origin.host_header)], b"", "test")
        got, peak = [], 0
        while (chunk := await resp.next_chunk()) is not None:
            got.append(chunk)
            peak = max(peak, len(chunk))
            await asyncio.sleep(0.01)  # a slow agent
        await resp.aclose()
        assert b"".join(got) == payload
        assert peak <= transport.MAX_READ_AHEAD + 256 * 1024  # read-ahead stays bounded (one socket read over)
        await close(p)

    with raw_upstream(script) as up:
        asyncio.run(run(up))


def test_gateway_forwards_the_raw_path_and_relays_a_chunked_stream(settings):
    events = [b'data: {"choices":[{"index":0,"delta":{"content":"hel"}}]}\n\n', b"data: [DONE]\n\n"]

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        if req["target"].startswith("/v1/chat/completions"):
            head = answer("200 OK", [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
            return [(head + chunked(events[0])[:-5], 0), (chunked(events[1]), 0.05)], False
        if req["target"] == "/v1/plain":  # no length, not JSON: relayed as it comes, like a stream
            head = answer("200 OK", [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
            return [(head + chunked(b"first ")[:-5], 0), (chunked(b"second"), 0.3)], False
        return [(answer("404 Not Found", [("Content-Length", "2"), ("Content-Type", "text/plain")], b"no"), 0)], False

    with raw_upstream(script) as up, run_server(gateway_settings(settings, up)) as srv, srv.client() as c:
        r = c.get("/gateway/openai/v1/files/a%2Fb%20c", params={"q": "x y"})
        assert (r.status_code, r.content) == (404, b"no")
        assert up.requests[-1]["target"] == "/v1/files/a%2Fb%20c?q=x+y"  # as the agent sent it
        body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            with c.stream("POST", "/gateway/openai/v1/chat/completions", json=body) as r:
                assert b"".join(r.iter_raw()) == b"".join(events)
        with c.stream("POST", "/gateway/openai/v1/plain", content=b"x") as r:
            chunks = list(r.iter_raw())
        assert b"".join(chunks) == b"first second" and len(chunks) == 2
        assert up.connections == 1
        sent = up.requests[-1]["headers"]
        assert sent["accept-encoding"] == "identity" and sent["host"] == f"{up.host}:{up.port}"
        resp = wait_events(c, "ai.response", 2)
        assert [e["data"]["choices"][0]["message"]["content"] for e in resp] == ["hel", "hel"]
        assert all(e["confidence"]["completeness"] != "partial" for e in resp)


def test_gateway_answers_502_when_the_upstream_breaks_a_json_answer(settings):
    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        return [(answer("200 OK", [("Content-Type", "application/json"), ("Content-Length", "50")], b'{"id"'), 0)], True

    with raw_upstream(script) as up, run_server(gateway_settings(settings, up)) as srv, srv.client() as c:
        started = time.monotonic()
        r = c.post("/gateway/openai/v1/chat/completions", json={"model": "gpt-4o", "messages": []})
        assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]
        assert time.monotonic() - started < 60  # not left waiting for the read timeout (600 s)
        resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["success"] is False and resp["error"]["type"] == "upstream_unreachable"


def self_signed(ip: str, tmp_path) -> tuple[ssl.SSLContext, bytes]:
    """A server context with a fresh self-signed certificate for ``ip``, and that certificate (PEM)."""
    san = x509.IPAddress(ipaddress.ip_address(ip))
    certfile, keyfile = certs.self_signed(tmp_path, "upstream.test", san, ca=True, valid=datetime.timedelta(hours=1))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx, certfile.read_bytes()


def test_tls_upstream_is_verified_and_kept_alive(tmp_path):
    server_ctx, pem = self_signed("127.0.0.2", tmp_path)

    def script(req: dict[str, Any]) -> tuple[list[tuple[bytes, float]], bool]:
        return [(answer("200 OK", [("Content-Length", "6")], b"secure"), 0)], False

    async def run(up: RawUpstream) -> None:
        untrusted = pool()  # the public CA bundle: a self-signed upstream is refused
        with pytest.raises(UpstreamFailure) as err:
            await fetch(untrusted, up)
        assert err.value.status == 502 and "TLSError" in str(err.value)
        await close(untrusted)
        p = pool()
        p.ssl_context = ssl.create_default_context(cadata=pem.decode())
        for _ in range(2):
            assert (await fetch(p, up))[::2] == (200, b"secure")
        await close(p)

    with raw_upstream(script, tls=server_ctx) as up:
        asyncio.run(run(up))
        assert up.connections == 1  # one kept-alive connection (the refused handshake never got that far)
        assert len(up.requests) == 2


def test_an_agent_that_hangs_up_frees_the_upstream_connection_and_is_recorded(settings):
    """The upstream never answers; the agent gives up: the gateway stops waiting at once (not at the
    600 s read timeout), gives the pool slot back and records the exchange as abandoned."""
    with raw_upstream(lambda req: ([], False)) as up, run_server(gateway_settings(settings, up)) as srv:
        gw = srv.aw.components["gateway"]
        host, port = srv.url.removeprefix("http://").split(":")
        body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'
        head = "POST /gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            deadline = time.monotonic() + 10
            while not up.requests and time.monotonic() < deadline:  # the request reached the upstream
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while gw.pool.slots._value < transport.MAX_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gw.pool.slots._value == transport.MAX_CONNECTIONS
        with srv.client() as c:
            resp = wait_events(c, "ai.response", 1)[0]["data"]
        assert resp["status_code"] == 499 and resp["success"] is False
        assert "ClientDisconnected" in resp["error"]["message"]
