"""Configuration of the capture capability (gateway routes, redaction, guard, sensor).

Imports only pydantic and the standard library: ``agentwatch.config`` imports it.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ProviderKind = Literal["openai", "anthropic", "gemini", "ollama", "openai_compatible"]
GuardMode = Literal["off", "monitor", "enforce"]


class UpstreamRoute(BaseModel):
    """One gateway route: ``/gateway/<name>/...`` is forwarded to ``base_url`` + the rest of the path."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderKind = Field(description="wire format spoken by the upstream")
    base_url: str = Field(max_length=2048, description="upstream root, e.g. https://api.openai.com")
    guard: GuardMode | None = Field(None, description="guard mode for this route; default: capture.guard.mode")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if any(ord(c) <= 32 or ord(c) == 127 for c in v):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(v)
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials (agents send their own provider key)")
        if not parts.hostname:
            raise ValueError("must name a host")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError("must have a port from 0 to 65535") from None
        if ":" not in parts.hostname:  # a name or IPv4 address: it goes in the Host header as IDNA
            try:
                parts.hostname.encode("idna")
            except UnicodeError:
                raise ValueError(f"host {parts.hostname!r} is not a valid host name") from None
        if parts.query or parts.fragment:
            raise ValueError("must not have a query string or fragment")
        return v.rstrip("/")


def default_routes() -> dict[str, UpstreamRoute]:
    return {
        "openai": UpstreamRoute(provider="openai", base_url="https://api.openai.com"),
        "anthropic": UpstreamRoute(provider="anthropic", base_url="https://api.anthropic.com"),
        "gemini": UpstreamRoute(provider="gemini", base_url="https://generativelanguage.googleapis.com"),
        "ollama": UpstreamRoute(provider="ollama", base_url="http://127.0.0.1:11434"),
    }


class GuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: GuardMode = Field("monitor", description="monitor: record and alert; enforce: also act; off: record only")
    enforce_action: Literal["block", "redact"] = Field(
        "block", description="in enforce mode: block the request, or redact secrets before forwarding"
    )
    approved_models: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="model ids (fnmatch globs) agents may use; empty means every model is approved",
    )
    block_severity: int = Field(7, ge=0, le=10, description="lowest finding severity that blocks in enforce mode")


def default_watched_paths() -> list[str]:
    return [
        "~/.ssh",
        "~/.aws",
        "~/.config/gcloud",
        "~/.azure",
        "~/.kube",
        "~/.docker",
        "~/.netrc",
        "~/.env",
        "~/.claude",
        "~/.cursor",
        "~/.codex",
        "~/.config/github-copilot",
        "~/.continue",
    ]


class SensorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    poll_interval_s: float = Field(0.5, ge=0.05, le=60, description="process and connection polling period")
    watched_paths: list[str] = Field(
        default_factory=default_watched_paths,
        max_length=500,
        description="files and directories watched with inotify (credentials, SSH keys, .env, agent config)",
    )
    batch_size: int = Field(500, ge=1, le=10_000)
    flush_interval_s: float = Field(1.0, ge=0.05, le=60)
    buffer_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="on-disk buffer cap while the server is away")


class CaptureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: dict[str, UpstreamRoute] = Field(
        default_factory=default_routes, description="gateway routes by name (openai, anthropic, gemini, ollama, ...)"
    )
    redaction: Literal["full", "safe", "minimal"] = Field(
        "safe",
        description="full: store content as sent; safe: secrets and PII replaced by $redacted objects; "
        "minimal: all message content replaced by $redacted objects (length and hash only)",
    )
    allow_loopback_upstreams: bool = Field(
        False, description="let routes point at 127.0.0.0/8 or ::1 (local Ollama, tests)"
    )
    allow_private_upstreams: bool = Field(False, description="let routes point at private (RFC 1918 etc.) addresses")
    upstream_timeout_s: float = Field(600.0, gt=0, le=3600)
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="largest request body forwarded")
    max_capture_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="response bytes kept for parsing; the agent always gets everything"
    )
    guard: GuardSettings = Field(default_factory=GuardSettings)
    sensor: SensorSettings = Field(default_factory=SensorSettings)

    @field_validator("routes", mode="before")
    @classmethod
    def _over_the_built_ins(cls, v: Any) -> Any:
        """Configured routes add to the built-in ones or replace one of the same name; a route
        set to null (``{"ollama": null}`` in JSON) removes it."""
        if not isinstance(v, dict):
            return v
        merged: dict[str, Any] = dict(default_routes())
        for name, route in v.items():
            if route is None:
                merged.pop(name, None)
            else:
                merged[name] = route
        return merged

    @field_validator("routes")
    @classmethod
    def _route_names(cls, v: dict[str, UpstreamRoute]) -> dict[str, UpstreamRoute]:
        if len(v) > 200:
            raise ValueError("at most 200 routes")
        for name in v:
            if not ROUTE_NAME.fullmatch(name):
                raise ValueError(f"route name {name!r} must match {ROUTE_NAME.pattern}")
        return v
