"""The in-memory index the matcher looks values up in: one dictionary lookup per value, a few
for a domain (itself and each name above it) and one per network size for an address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from agentwatch.intel.indicators import parent_domains
from agentwatch.intel.store import Indicator


@dataclass
class IocIndex:
    exact: dict[tuple[str, str], Indicator] = field(default_factory=dict)
    # (IP version, prefix length) -> network address as an integer -> indicator
    networks: dict[tuple[int, int], dict[int, Indicator]] = field(default_factory=dict)

    @classmethod
    def of(cls, indicators: Iterable[Indicator]) -> IocIndex:
        index = cls()
        for ind in indicators:
            if ind.kind == "cidr":
                net = ipaddress.ip_network(ind.value)
                index.networks.setdefault((net.version, net.prefixlen), {})[int(net.network_address)] = ind
            else:
                index.exact[(ind.kind, ind.value)] = ind
        return index

    def __len__(self) -> int:
        return len(self.exact) + sum(len(n) for n in self.networks.values())

    def address(self, value: str) -> list[Indicator]:
        """The indicators an address meets: itself, and every listed network holding it."""
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            return []
        found = []
        hit = self.exact.get(("ip", str(addr)))
        if hit is not None:
            found.append(hit)
        if self.networks:
            as_int = int(addr)
            bits = addr.max_prefixlen
            for (version, prefix), nets in self.networks.items():
                if version == addr.version:
                    net = nets.get(as_int >> (bits - prefix) << (bits - prefix))
                    if net is not None:
                        found.append(net)
        return found

    def network(self, value: str) -> list[Indicator]:
        """The indicators a network meets: every listed network holding it (itself among them)."""
        try:
            net = ipaddress.ip_network(value)
        except ValueError:
            return []
        as_int = int(net.network_address)
        bits = net.max_prefixlen
        found = []
        for (version, prefix), nets in self.networks.items():
            if version == net.version and prefix <= net.prefixlen:
                hit = nets.get(as_int >> (bits - prefix) << (bits - prefix))
                if hit is not None:
                    found.append(hit)
        return found

    def domain(self, name: str) -> list[Indicator]:
        """The indicators a domain name meets: itself and every listed name above it."""
        found = []
        for candidate in parent_domains(name.rstrip(".").lower()):
            hit = self.exact.get(("domain", candidate))
            if hit is not None:
                found.append(hit)
        return found

    def value(self, kind: str, value: str) -> list[Indicator]:
        """A value of any kind (canonical form): what it meets."""
        if kind == "ip":
            return self.address(value)
        if kind == "domain":
            return self.domain(value)
        if kind == "cidr":
            return self.network(value)
        hit = self.exact.get((kind, value))
        return [hit] if hit is not None else []
