"""Settings of passkey sign-in (``[passkeys]`` in the config file, ``AGENTWATCH_PASSKEYS__*``)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class PasskeySettings(BaseModel):
    enabled: bool = Field(True, description="serve the passkey routes (WebAuthn registration and sign-in)")
    rp_id: str | None = Field(
        None,
        max_length=253,
        description="the WebAuthn relying party id (a domain, e.g. soc.example.com); "
        "default: localhost while the server listens on loopback",
    )
    rp_name: str = Field("agentwatch", min_length=1, max_length=64, description="the name authenticators show")
    origins: list[str] = Field(
        default_factory=list,
        max_length=16,
        description="browser origins a ceremony may come from (https://soc.example.com); "
        "default: http://localhost:PORT and http://HOST:PORT while the server listens on loopback",
    )
    user_verification: Literal["required", "preferred", "discouraged"] = Field(
        "preferred",
        description="ask authenticators to verify the user (PIN, biometrics); 'required' refuses those that did not",
    )
    max_per_user: int = Field(10, ge=1, le=100, description="passkeys one user may register")
    challenge_ttl_s: int = Field(300, ge=10, le=3600, description="seconds a ceremony's challenge stays usable")
    max_challenges_per_user: int = Field(
        5, ge=1, le=100, description="pending registration challenges kept per user (a newer one replaces the oldest)"
    )
    max_challenges: int = Field(10_000, ge=10, le=1_000_000, description="pending registration challenges kept in all")

    @field_validator("rp_id")
    @classmethod
    def _rp_id_is_domain(cls, v: str | None) -> str | None:
        if v is not None and not DOMAIN_RE.match(v):
            raise ValueError("must be a lower-case domain name (no scheme, port or path)")
        return v

    @field_validator("origins")
    @classmethod
    def _origins_are_origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("https", "http")
                or not parts.hostname
                or parts.path
                or parts.query
                or parts.fragment
                or parts.username
                or len(origin) > 256
            ):
                raise ValueError(f"{origin[:64]!r} is not an origin (scheme://host[:port], at most 256 characters)")
        return v
