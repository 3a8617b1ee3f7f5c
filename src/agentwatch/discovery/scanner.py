"""The scanner: every target host and AI port, then every protocol probe on each open port.

All network work runs under one :class:`~agentwatch.discovery.limits.Limits`: a
global concurrency budget, a per-host budget, per-host and global rates. Every
connection has a connect timeout, every request an overall deadline and a body
cap, and no redirect is followed. A scan is one asyncio task: cancelling it
stops all of its connections at once (the stop route waits at most a second).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentwatch.discovery import probes
from agentwatch.discovery.allowlist import Targets
from agentwatch.discovery.httpio import Http, make_client
from agentwatch.discovery.limits import Limits
from agentwatch.discovery.probes import mcp_tcp, negative, tcp, tls
from agentwatch.discovery.report import service_agent
from agentwatch.discovery.scoring import score_service
from agentwatch.discovery.settings import DiscoverySettings
from agentwatch.discovery.signals import Service

AgentCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
ProgressCallback = Callable[[int, int, int], Awaitable[None] | None]  # hosts done, hosts total, agents
MAX_SERVICE_ERRORS = 20


class DetectorError(ValueError):
    """An unknown detector name; the message names the field and the allowed values."""


def resolve_detectors(names: list[str] | str | None) -> tuple[list[str], list[str]]:
    """(active detectors, passive ones that were asked for but have no active form)."""
    if names is None or names == "" or names == []:
        return list(probes.DEFAULT_DETECTORS), []
    items = names.split(",") if isinstance(names, str) else list(names)
    if len(items) > 32:
        raise DetectorError("detectors: at most 32 names")
    active: list[str] = []
    passive: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        name = probes.ALIASES.get(name, name)
        if name in probes.PASSIVE:
            passive.append(name)
        elif name in probes.DETECTORS:
            if name not in active:
                active.append(name)
        else:
            allowed = ", ".join([*probes.DETECTORS, *probes.ALIASES, *sorted(probes.PASSIVE)])
            raise DetectorError(f"detectors: unknown detector {raw.strip()[:64]!r} (one of {allowed})")
    if not active:
        raise DetectorError("detectors: no active detector selected")
    return active, passive


@dataclass
class ScanOutcome:
    scan_id: str
    started_at: float
    completed_at: float
    target: str
    detectors: list[str]
    agents: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


async def _call(cb: Callable[..., Any] | None, *args: Any) -> None:
    if cb is None:
        return
    result = cb(*args)
    if asyncio.iscoroutine(result):
        await result


class Scanner:
    def __init__(
        self, settings: DiscoverySettings, detectors: list[str] | None = None, ports: list[int] | None = None
    ) -> None:
        self.settings = settings
        self.detectors = detectors or list(probes.DEFAULT_DETECTORS)
        self.ports = ports or list(settings.ports)

    async def scan(
        self,
        targets: Targets,
        *,
        scan_id: str | None = None,
        on_agent: AgentCallback | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ScanOutcome:
        s = self.settings
        scan_id = scan_id or str(uuid.uuid4())
        started = time.time()
        limits = Limits(
            concurrency=s.concurrency,
            per_host=s.per_host_concurrency,
            rate_per_host=s.rate_per_host,
            global_rate=s.global_rate,
        )
        hosts = targets.hosts()
        agents: list[dict[str, Any]] = []
        stats = {"hosts": len(hosts), "ports": len(self.ports), "open_ports": 0, "services": 0, "requests": 0}
        done = 0
        host_gate = asyncio.Semaphore(max(4, s.concurrency // 4))
        client = make_client(connect_timeout=s.connect_timeout, read_timeout=s.read_timeout, concurrency=s.concurrency)
        try:

            async def one_host(host: str) -> None:
                nonlocal done
                async with host_gate:
                    found = await self._host(host, limits, client, stats)
                for agent in found:
                    agents.append(agent)
                    await _call(on_agent, agent)
                done += 1
                await _call(on_progress, done, len(hosts), len(agents))

            async with asyncio.TaskGroup() as group:
                for host in hosts:
                    group.create_task(one_host(host))
        finally:
            await client.aclose()
        stats["requests"] = limits.requests
        agents.sort(key=lambda a: (ipaddress.ip_address(a["ip_address"]), a["port"]))
        return ScanOutcome(scan_id, started, time.time(), targets.text, self.detectors, agents, stats)

    async def _host(self, host: str, limits: Limits, client: Any, stats: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.settings

        async def connect(port: int) -> tuple[int, str | None | bool]:
            async with limits.slot(host):
                return port, await tcp.connect(host, port, s.connect_timeout, s.banner_timeout)

        results = await asyncio.gather(*(connect(p) for p in self.ports))
        open_ports = [(p, b) for p, b in results if b is not False]
        stats["open_ports"] += len(open_ports)
        found = await asyncio.gather(*(self._guarded(host, p, b, limits, client, stats) for p, b in open_ports))
        return [a for a in found if a is not None]

    async def _guarded(
        self, host: str, port: int, banner: Any, limits: Limits, client: Any, stats: dict[str, Any]
    ) -> dict[str, Any] | None:
        """One service; what it sends is hostile input, so a probe tripping over it loses that service only.

        Not logged here (the CLI scans without a log setup): counted in the stats, which the server logs."""
        try:
            return await self._service(host, port, banner, limits, client, stats)
        except Exception as exc:
            stats["services_failed"] = stats.get("services_failed", 0) + 1
            errors = stats.setdefault("service_errors", [])
            if len(errors) < MAX_SERVICE_ERRORS:
                errors.append({"host": host, "port": port, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            return None

    async def _service(
        self, host: str, port: int, banner: Any, limits: Limits, client: Any, stats: dict[str, Any]
    ) -> dict[str, Any] | None:
        s = self.settings
        service = Service(host=host, port=port, banner=banner if isinstance(banner, str) else None)
        if "port_scanner" in self.detectors:
            service.signals.append(tcp.port_signal(host, port))
        if service.banner is None:
            async with limits.slot(host):
                facts = await tls.handshake(host, port, s.connect_timeout, s.read_timeout)
            service.scheme = "https" if facts else "http"
            if facts and "tls_fingerprint" in self.detectors:
                service.tls = facts
        http = Http(service, client, limits, max_bytes=s.max_response_bytes, deadline=s.read_timeout)
        if service.banner is None:
            root = await http.get("/")
            if root is None:
                service.scheme = "tcp"
                if "mcp_detector" in self.detectors:
                    service.signals.extend(
                        await mcp_tcp.probe(service, limits, connect_timeout=s.connect_timeout, deadline=s.read_timeout)
                    )
            else:
                stats["services"] += 1
                await negative.check_root(http, service)
                jobs = [fn(http, service) for name in self.detectors for fn in probes.DETECTORS[name]]
                for found in await asyncio.gather(*jobs):
                    service.signals.extend(found)
        else:
            service.scheme = "tcp"
        result = score_service(service, s)
        if not result.reported:
            return None
        hostname = None
        if s.reverse_dns:
            hostname = await _reverse(host)
        return service_agent(service, result, time.time(), hostname)


async def _reverse(address: str) -> str | None:
    try:
        name, _ = await asyncio.wait_for(asyncio.to_thread(socket.getnameinfo, (address, 0), socket.NI_NAMEREQD), 2.0)
        return name
    except (OSError, TimeoutError):
        return None
