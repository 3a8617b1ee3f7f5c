"""Scan targets: parsing, the host cap and the allowlist, all checked before any packet is sent.

A target is a comma/space separated list of IP addresses and CIDR networks. Host
names are refused: resolving them would send DNS traffic the operator did not ask
for, and would let a name point the scanner outside the allowlist.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_TARGET_TEXT = 4096
MAX_ITEMS = 256
_SPLIT = re.compile(r"[\s,]+")


class TargetError(ValueError):
    """A target that may not be scanned; the message names the field and the rule."""


@dataclass(frozen=True)
class Targets:
    text: str
    networks: tuple[Network, ...]

    @property
    def size(self) -> int:
        return sum(_host_count(n) for n in self.networks)

    def hosts(self) -> list[str]:
        seen: dict[str, None] = {}
        for net in self.networks:
            for ip in _hosts(net):
                seen.setdefault(str(ip), None)
        return list(seen)

    def contains(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in self.networks)


def _host_count(net: Network) -> int:
    if net.version == 4 and net.prefixlen < 31:
        return net.num_addresses - 2
    return net.num_addresses


def _hosts(net: Network) -> Iterable[Address]:
    if net.num_addresses == 1:
        return [net.network_address]
    return net.hosts()


def parse_targets(text: str, *, allowed: Iterable[str], max_hosts: int, field: str = "network") -> Targets:
    """Parse and check a target list; raises TargetError before anything is contacted."""
    if not isinstance(text, str) or not text.strip():
        raise TargetError(f"{field}: is required (a CIDR or a comma-separated list of addresses)")
    if len(text) > MAX_TARGET_TEXT:
        raise TargetError(f"{field}: longer than {MAX_TARGET_TEXT} characters")
    items = [i for i in _SPLIT.split(text.strip()) if i]
    if not items:
        raise TargetError(f"{field}: names no address (a CIDR or a comma-separated list of addresses)")
    if len(items) > MAX_ITEMS:
        raise TargetError(f"{field}: at most {MAX_ITEMS} items")
    allow = [ipaddress.ip_network(a, strict=False) for a in allowed]
    networks: list[Network] = []
    total = 0
    for item in items:
        value = "127.0.0.1" if item.lower() == "localhost" else item
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise TargetError(
                f"{field}: {item!r} is not an IP address or CIDR network (host names are not resolved)"
            ) from None
        if net.is_multicast or net.network_address.is_unspecified:
            raise TargetError(f"{field}: {item} is not a unicast network")
        total += _host_count(net)
        if total > max_hosts:
            raise TargetError(f"{field}: more than {max_hosts} hosts (the per-scan host cap)")
        if not any(net.version == a.version and net.subnet_of(a) for a in allow):  # type: ignore[arg-type]
            raise TargetError(f"{field}: {item} is outside the allowed networks ({', '.join(map(str, allow))})")
        networks.append(net)
    return Targets(text=",".join(items), networks=tuple(networks))
