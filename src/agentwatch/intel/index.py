"""The in-memory index the matcher looks values up in: one dictionary lookup per value, a few
for a domain (itself and each name above it) and one per network size for an address.

It changes one indicator at a time (:meth:`IocIndex.put`, :meth:`IocIndex.drop`,
:meth:`IocIndex.drop_id`, each a few dictionary operations) and drops indicators at their
``expires_at`` (:meth:`IocIndex.expire`, a heap of expiry times), so a change costs the same
however many indicators it holds. Readers look values up without a lock while one writer changes
it: the table of networks by size is replaced, never changed in place, when a size comes or goes
(readers iterate it)."""

from __future__ import annotations

import heapq
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
    # (expires_at, kind, value, id) of every indicator put with an expiry; entries of indicators
    # since dropped or changed stay until their time comes (or the heap is compacted)
    expiries: list[tuple[float, str, str, str]] = field(default_factory=list)
    # indicator id -> (kind, value) of every indicator held (the change log names indicators by id)
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, indicators: Iterable[Indicator]) -> IocIndex:
        index = cls()
        for ind in indicators:
            index.put(ind)
        return index

    @staticmethod
    def _network_key(value: str) -> tuple[tuple[int, int], int]:
        net = ipaddress.ip_network(value)
        return (net.version, net.prefixlen), int(net.network_address)

    def _get(self, kind: str, value: str) -> Indicator | None:
        if kind != "cidr":
            return self.exact.get((kind, value))
        size, at = self._network_key(value)
        return self.networks.get(size, {}).get(at)

    def put(self, ind: Indicator) -> None:
        """Add ``ind``, or replace the indicator of its kind and value."""
        held = self._get(ind.kind, ind.value)
        if held is not None and held.id != ind.id:
            self.ids.pop(held.id, None)
        self.ids[ind.id] = (ind.kind, ind.value)
        if ind.kind == "cidr":
            size, at = self._network_key(ind.value)
            nets = self.networks.get(size)
            if nets is None:
                self.networks = {**self.networks, size: {at: ind}}
            else:
                nets[at] = ind
        else:
            self.exact[(ind.kind, ind.value)] = ind
        if ind.expires_at is not None:
            heapq.heappush(self.expiries, (ind.expires_at, ind.kind, ind.value, ind.id))
            if len(self.expiries) > 2 * len(self) + 64:
                self._compact()

    def drop(self, kind: str, value: str) -> None:
        """Remove the indicator of ``kind`` and ``value``, if held."""
        if kind != "cidr":
            gone = self.exact.pop((kind, value), None)
            if gone is not None:
                self.ids.pop(gone.id, None)
            return
        size, at = self._network_key(value)
        nets = self.networks.get(size)
        gone = None if nets is None else nets.pop(at, None)
        if gone is not None:
            self.ids.pop(gone.id, None)
            if not nets:
                self.networks = {k: v for k, v in self.networks.items() if k != size}

    def drop_id(self, ind_id: str) -> None:
        """Remove the indicator of id ``ind_id``, if held (one put since under a new id stays)."""
        where = self.ids.get(ind_id)
        if where is not None:
            held = self._get(*where)
            if held is not None and held.id == ind_id:
                self.drop(*where)
            else:
                self.ids.pop(ind_id, None)

    def expire(self, now: float) -> int:
        """Drop the indicators whose ``expires_at`` is at or before ``now``; how many went."""
        gone = 0
        while self.expiries and self.expiries[0][0] <= now:
            at, kind, value, ind_id = heapq.heappop(self.expiries)
            held = self._get(kind, value)
            if held is not None and held.id == ind_id and held.expires_at == at:
                self.drop(kind, value)
                gone += 1
        return gone

    def next_expiry(self) -> float:
        return self.expiries[0][0] if self.expiries else float("inf")

    def _compact(self) -> None:
        """Keep only the heap entries of the indicators held as they are."""
        live = []
        for entry in self.expiries:
            held = self._get(entry[1], entry[2])
            if held is not None and held.id == entry[3] and held.expires_at == entry[0]:
                live.append(entry)
        heapq.heapify(live)
        self.expiries = live

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
