"""The gateway's upstream HTTP client, behind the SSRF guard of ``agentwatch.net.ssrf``.

Every connection re-checks the addresses it is about to use (DNS rebinding safe):
cloud metadata, multicast and reserved addresses are always refused; loopback only when
``capture.allow_loopback_upstreams`` is set, private ranges only with
``capture.allow_private_upstreams``. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from agentwatch.net.ssrf import IPAddress, SSRFError, address_problem, check_addresses

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


class UpstreamBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allow_loopback: bool, allow_private: bool) -> None:
        self.allow_loopback = allow_loopback
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

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

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for ip in await self._addresses(host, port):
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}:{port}")

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(REFUSED_PREFIX + "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def upstream_client(*, allow_loopback: bool, allow_private: bool, timeout: float) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(retries=0, trust_env=False)
    # httpx 0.28 takes no network backend; rebuild its pool on the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=1000,
        max_keepalive_connections=200,
        keepalive_expiry=30.0,
        network_backend=UpstreamBackend(allow_loopback=allow_loopback, allow_private=allow_private),
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout, connect=10.0),
        follow_redirects=False,
        trust_env=False,
    )
