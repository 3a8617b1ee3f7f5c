"""What probes report (signals) and what a scan finds per service, in the documented JSON shapes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agentwatch.events.model import iso

GRADES = ("low", "medium", "high", "confirmed")


@dataclass
class Signal:
    """One piece of evidence that a service is an AI agent, LLM server or MCP server.

    ``content_verified`` is False when the evidence is only a status code or a
    header on a path: a catch-all server produces such evidence for any path, so
    scoring drops it when the negative check fires. ``needs_corroboration`` marks
    evidence too weak to report anything alone (an open AI port).
    """

    detector: str
    signal_type: str
    description: str
    confidence: str
    evidence: dict[str, Any]
    framework: str | None = None
    agent_type: str | None = None
    content_verified: bool = True
    needs_corroboration: bool = False
    timestamp: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "signal_type": self.signal_type,
            "description": self.description,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "timestamp": iso(self.timestamp),
        }


@dataclass
class Service:
    """One open port on one host and everything the probes learned about it."""

    host: str
    port: int
    scheme: str = "tcp"  # "http", "https" or "tcp" (no HTTP answer)
    banner: str | None = None
    tls: dict[str, Any] | None = None
    catch_all: bool = False
    catch_all_evidence: dict[str, Any] | None = None
    negative: dict[str, int | None] = field(default_factory=dict)  # parent path -> status of a random sibling
    signals: list[Signal] = field(default_factory=list)
    mcp: dict[str, Any] | None = None
    agentpin: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def protocol(self) -> str:
        return self.scheme
