"""Scanner settings (``[discovery]`` in the TOML file, ``AGENTWATCH_DISCOVERY__*`` in the environment).

Imports only pydantic and the standard library: ``agentwatch.config`` imports this module.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator

# Ports where AI services listen by default (LLM servers, agent frameworks, MCP, vector stores).
AI_PORTS: tuple[int, ...] = (
    80, 443, 1234, 1337, 2024, 3000, 3001, 3080, 3100, 4000, 5000, 5001, 5678, 6333, 7860, 8000,
    8001, 8080, 8082, 8123, 8283, 8443, 8501, 8888, 9000, 11434, 19530,
)  # fmt: skip

DEFAULT_ALLOWED = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


class Weights(BaseModel):
    """Probability each signal grade contributes to the noisy-OR (agentsniff's defaults)."""

    low: float = Field(0.2, ge=0, le=1)
    medium: float = Field(0.5, ge=0, le=1)
    high: float = Field(0.8, ge=0, le=1)
    confirmed: float = Field(1.0, ge=0, le=1)


class Levels(BaseModel):
    """Score thresholds of the confidence levels and of reporting at all."""

    confirmed: float = Field(0.9, ge=0, le=1)
    high: float = Field(0.6, ge=0, le=1)
    medium: float = Field(0.3, ge=0, le=1)
    report: float = Field(0.3, ge=0, le=1, description="services scoring below are not reported as agents")


class DiscoverySettings(BaseModel):
    allowed_networks: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED),
        max_length=256,
        description="CIDRs a scan may target; a target outside all of them is refused before any packet",
    )
    max_hosts: int = Field(1024, ge=1, le=1 << 20, description="largest number of addresses in one scan")
    ports: list[int] = Field(default_factory=lambda: list(AI_PORTS), min_length=1, max_length=1024)
    concurrency: int = Field(256, ge=1, le=10_000, description="global budget of simultaneous connections")
    per_host_concurrency: int = Field(
        8, ge=2, le=256, description="simultaneous requests to one host (2 or more: an SSE probe holds one)"
    )
    rate_per_host: float = Field(200.0, gt=0, description="new connections/requests per second to one host")
    global_rate: float = Field(5000.0, gt=0, description="new connections/requests per second overall")
    connect_timeout: float = Field(1.0, gt=0, le=60)
    read_timeout: float = Field(3.0, gt=0, le=120)
    banner_timeout: float = Field(0.25, ge=0, le=10, description="wait for a server-first banner")
    max_response_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    reverse_dns: bool = Field(False, description="look up host names of found agents (off: no DNS traffic)")
    weights: Weights = Field(default_factory=Weights)
    levels: Levels = Field(default_factory=Levels)
    history_keep: int = Field(500, ge=1, description="scan results kept in the store")
    schedule_network: str | None = Field(None, max_length=4096, description="scan this target on a schedule")
    schedule_every_s: float | None = Field(None, ge=10, description="seconds between scheduled scans")
    notify_allow_private: bool = Field(
        False, description="let alert outputs post to loopback/private addresses (tests, internal receivers)"
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: list[int]) -> list[int]:
        for p in v:
            if not 1 <= p <= 65535:
                raise ValueError(f"port {p} is outside 1-65535")
        return list(dict.fromkeys(v))
