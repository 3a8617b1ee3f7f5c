"""Settings of the honeytokens capability (``[honeytokens]`` in the config file,
``AGENTWATCH_HONEYTOKENS__*``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator


class HoneytokenSettings(BaseModel):
    enabled: bool = Field(True, description="look for every live honeytoken in every stored event")
    max_tokens: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="honeytokens kept, revoked ones included; a creation past it answers 507",
    )
    severity: int = Field(8, ge=0, le=10, description="severity (0-10) of the alert a touched honeytoken raises")
    public_url: str | None = Field(
        None,
        max_length=512,
        description="base of the tracking URLs of url honeytokens (where a tripped canary reaches this server); "
        "the address the creating request came to when left out",
    )
    refresh_s: float = Field(
        5.0, gt=0, le=3600, description="how often a node checks whether another node changed the honeytokens"
    )
    scan_bytes: int = Field(
        1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="bytes of each event (as stored JSON) searched, at most"
    )
    track_window_s: int = Field(60, ge=1, le=3600, description="length of one rate-limit window of the tracking route")
    track_per_address: int = Field(
        30, ge=1, le=100_000, description="tracking requests one client address may make per window"
    )
    track_total: int = Field(600, ge=1, le=1_000_000, description="tracking requests all clients may make per window")

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            parts = urlsplit(v)
        except ValueError:
            raise ValueError("must be an http:// or https:// URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http:// or https:// URL with a host and no query or fragment")
        if any(c.isspace() or ord(c) < 32 for c in v):
            raise ValueError("must not contain blanks or control characters")
        return v.rstrip("/")
