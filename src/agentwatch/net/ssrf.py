"""SSRF guard for every outbound URL a user can configure (alert webhooks, outputs, ...).

Two checks, because checking a URL once is not enough:

1. :func:`check_url` validates the text when the setting is saved: allowed scheme,
   no credentials in the URL, a host, and every address the host resolves to is
   public (or explicitly allowed).
2. :func:`guarded_client` returns an ``httpx.AsyncClient`` whose connections are
   opened by :class:`GuardedBackend`: it resolves the host itself, checks every
   address again at connect time and connects to the checked address. A DNS name
   that answered with a public address when saved and with ``127.0.0.1`` later
   (DNS rebinding) is refused. Redirects are never followed.

Refused unless ``allow_private``: loopback, private (RFC 1918, ULA), link-local,
shared (100.64/10) and other non-public addresses. Refused even then: unspecified, multicast
and reserved addresses, and the metadata and credential services of the clouds
(:data:`METADATA_ADDRESSES`). An address is judged whatever its spelling (decimal, octal or hex
IPv4, IPv4-mapped IPv6, 6to4), since the resolver reads all of them as the same address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

MAX_URL_LENGTH = 2048
DEFAULT_SCHEMES = frozenset({"https", "http"})

# Instance-metadata and credential services of the clouds: never a legitimate alert receiver.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack... instance metadata
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity credentials
        "169.254.0.23",  # Tencent Cloud metadata
        "100.100.100.200",  # Alibaba Cloud metadata
        "192.0.0.192",  # Oracle Cloud metadata
        "168.63.129.16",  # Azure WireServer (a public address)
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
    )
)
# Not public, though Python 3.11's table calls them global: IETF protocol assignments
# (192.0.0.0/24) and IPv6 site-local addresses (deprecated, still routed inside some networks).
NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("fec0::/10"))

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SSRFError(ValueError):
    """An outbound URL or address was refused; the message says which rule."""


class UnresolvedHost(SSRFError):
    """The host name has no address (now): refused, though not for what it resolves to."""


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why ``ip`` may not be contacted, or None when it may.

    An IPv6 address that carries an IPv4 address it is routed to (IPv4-mapped ``::ffff:a.b.c.d``,
    6to4 ``2002:aabb:ccdd::/48``) is judged by that IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        inner = address_problem(ip.sixtofour, allow_private=allow_private)
        return f"{ip} is 6to4 for {ip.sixtofour}: {inner}" if inner else None
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):
        return f"{ip} is not a unicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")):
        return f"{ip} is a private address"
    if not ip.is_global or any(ip.version == net.version and ip in net for net in NOT_PUBLIC):
        return f"{ip} is not a public address"
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHost(f"host {host!r} does not resolve") from exc
    out: list[IPAddress] = []
    for *_rest, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise UnresolvedHost(f"host {host!r} does not resolve")
    return out


def check_addresses(host: str, port: int, *, allow_private: bool = False) -> list[IPAddress]:
    """Resolve ``host`` and refuse it when any of its addresses is refused."""
    addresses = _resolve(host, port)
    for ip in addresses:
        problem = address_problem(ip, allow_private=allow_private)
        if problem:
            raise SSRFError(f"url: host {host!r} refused: {problem}")
    return addresses


def check_url(
    url: str,
    *,
    allow_private: bool = False,
    schemes: Iterable[str] = DEFAULT_SCHEMES,
    resolve: bool = True,
) -> str:
    """Validate an outbound URL; returns it unchanged or raises :class:`SSRFError` naming the rule."""
    if not isinstance(url, str) or not url:
        raise SSRFError("url: must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise SSRFError(f"url: longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise SSRFError("url: must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise SSRFError(f"url: malformed ({exc})") from None
    allowed = {s.lower() for s in schemes}
    if parts.scheme.lower() not in allowed:
        raise SSRFError(f"url: scheme must be one of {', '.join(sorted(allowed))}")
    if parts.username is not None or parts.password is not None:
        raise SSRFError("url: must not carry credentials (use the output's secret or headers)")
    host = parts.hostname
    if not host:
        raise SSRFError("url: must name a host")
    if resolve:
        check_addresses(host, port or (443 if parts.scheme.lower() == "https" else 80), allow_private=allow_private)
    return url


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks every address right before connecting to it."""

    refused_prefix = ""

    def __init__(self, *, allow_private: bool = False, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self.inner = inner or httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses to try for ``host``; raises ``ConnectError`` when refused."""
        try:
            return await asyncio.to_thread(check_addresses, host, port, allow_private=self.allow_private)
        except SSRFError as exc:
            raise httpcore.ConnectError(str(exc)) from exc

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
        raise httpcore.ConnectError(self.refused_prefix + "unix sockets are not allowed for outbound URLs")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(*, allow_private: bool = False, timeout: float = 10.0, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that never follows redirects and connects only to checked addresses."""
    transport = httpx.AsyncHTTPTransport(retries=0, trust_env=False)
    # httpx (pinned 0.28) builds its connection pool without a network-backend option;
    # replace it with the same pool on the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=20,
        max_keepalive_connections=5,
        network_backend=GuardedBackend(allow_private=allow_private),
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False, **kwargs)
