"""The documented JSON shapes: agent objects and scan results (agentsniff's API, plus our extras)."""

from __future__ import annotations

import uuid
from typing import Any

from agentwatch.discovery.scoring import Score
from agentwatch.discovery.signals import Service
from agentwatch.events.model import iso

AGENT_NS = uuid.UUID("7d1f0c64-3a0e-5b8c-9f2a-6a1d2e4c8b10")
LEVELS = ("low", "medium", "high", "confirmed")
STATUSES = ("detected", "suspected", "verified")


def agent_id(address: str, port: int, protocol: str) -> str:
    """The same service gets the same id in every scan (and in every agentwatch)."""
    return str(uuid.uuid5(AGENT_NS, f"{address.lower()}|{port}|{protocol.lower()}"))


def service_agent(service: Service, score: Score, now: float, hostname: str | None = None) -> dict[str, Any]:
    meta = {k: v for k, v in service.metadata.items() if not k.startswith("_")}
    if service.banner:
        meta["banner"] = service.banner[:512]
    meta["protocol"] = service.protocol
    return {
        "id": agent_id(service.host, service.port, service.protocol),
        "host": hostname or service.host,
        "ip_address": service.host,
        "port": service.port,
        "protocol": service.protocol,
        "agent_type": score.agent_type,
        "framework": score.framework or "unknown",
        "status": score.status,
        "confidence_score": score.score,
        "confidence_level": score.level,
        "signal_count": len(service.signals),
        "signals": [s.to_json() for s in service.signals],
        "agentpin_identity": service.agentpin,
        "mcp_capabilities": service.mcp,
        "tls_fingerprint": service.tls,
        "first_seen": iso(now),
        "last_seen": iso(now),
        "metadata": meta,
        "score_breakdown": score.breakdown,
        "source": "scan",
    }


def summary(agents: list[dict[str, Any]], detectors: list[str], duration: float) -> dict[str, Any]:
    by_conf = dict.fromkeys(LEVELS, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    for a in agents:
        by_conf[a["confidence_level"]] = by_conf.get(a["confidence_level"], 0) + 1
        by_status[a["status"]] = by_status.get(a["status"], 0) + 1
    return {
        "total_agents": len(agents),
        "by_confidence": by_conf,
        "by_status": by_status,
        "detectors_run": detectors,
        "duration_seconds": round(duration, 3),
    }


def scan_result(
    *,
    scan_id: str,
    started_at: float,
    completed_at: float | None,
    target: str,
    agents: list[dict[str, Any]],
    detectors: list[str],
    status: str,
    stats: dict[str, Any],
    diff: dict[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    end = completed_at if completed_at is not None else started_at
    return {
        "scan_id": scan_id,
        "started_at": iso(started_at),
        "completed_at": iso(completed_at) if completed_at is not None else None,
        "target_network": target,
        "status": status,
        "summary": summary(agents, detectors, end - started_at),
        "agents": agents,
        "stats": stats,
        "diff": diff or {"new": [], "changed": [], "gone": []},
        "error": error,
    }
