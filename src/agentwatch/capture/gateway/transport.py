"""The gateway's upstream HTTP client, behind the SSRF guard of ``agentwatch.net.ssrf``.

Every connection re-checks the addresses it is about to use (DNS rebinding safe):
cloud metadata, multicast and reserved addresses are always refused; loopback only when
``capture.allow_loopback_upstreams`` is set, private ranges only with
``capture.allow_private_upstreams``. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from urllib.parse import urlsplit

import certifi
import httpcore

from agentwatch.net.ssrf import GuardedBackend, IPAddress, SSRFError, address_problem, check_addresses

REFUSED_PREFIX = "upstream refused by the SSRF guard: "


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


class UpstreamBackend(GuardedBackend):
    """The shared guarded backend with the gateway's own address policy (loopback by setting)."""

    refused_prefix = REFUSED_PREFIX

    def __init__(self, *, allow_loopback: bool, allow_private: bool) -> None:
        super().__init__(allow_private=allow_private)
        self.allow_loopback = allow_loopback

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = await asyncio.to_thread(check_addresses, host, port, allow_private=True)
            except SSRFError as exc:
                raise httpcore.ConnectError(REFUSED_PREFIX + str(exc)) from exc
        for ip in addresses:
            problem = upstream_problem(ip, allow_loopback=self.allow_loopback, allow_private=self.allow_private)
            if problem:
                raise httpcore.ConnectError(f"{REFUSED_PREFIX}host {host!r}: {problem}")
        return addresses


class UpstreamFailure(Exception):
    """The upstream could not be reached or broke the exchange; ``status`` is the answer to give."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


TRANSPORT_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


def failure(exc: Exception, route: str) -> UpstreamFailure:
    text = str(exc)
    if text.startswith(REFUSED_PREFIX):
        return UpstreamFailure(text, 403)
    if isinstance(exc, httpcore.TimeoutException):
        return UpstreamFailure(f"upstream {route} timed out ({type(exc).__name__})", 504)
    return UpstreamFailure(f"upstream {route} unreachable ({type(exc).__name__})", 502)


class UpstreamPool:
    """Pooled keep-alive connections to the upstreams, straight on httpcore.

    httpcore rather than an httpx client: no cookie jar (a client-wide jar would carry one
    agent's provider cookies into another agent's requests), no redirects, and less work per
    request on the hot path.
    """

    def __init__(self, *, allow_loopback: bool, allow_private: bool, timeout: float) -> None:
        self.timeout = {"connect": min(10.0, timeout), "read": timeout, "write": timeout, "pool": timeout}
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            max_connections=1000,
            max_keepalive_connections=200,
            keepalive_expiry=30.0,
            retries=0,
            network_backend=UpstreamBackend(allow_loopback=allow_loopback, allow_private=allow_private),
        )

    async def send(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes, route: str
    ) -> httpcore.Response:
        """The upstream's response with its body still to be read from ``.stream`` (then ``aclose()``)."""
        request = httpcore.Request(method, url, headers=headers, content=body, extensions={"timeout": self.timeout})
        try:
            return await self.pool.handle_async_request(request)
        except TRANSPORT_ERRORS as exc:
            raise failure(exc, route) from None

    async def aclose(self) -> None:
        await self.pool.aclose()
