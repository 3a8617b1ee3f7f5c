"""Settings of the access layer (pydantic only: ``agentwatch.config`` imports this module)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RateLimitSettings(BaseModel):
    """Request budgets per fixed window; shared through Redis when ``redis_url`` is set."""

    enabled: bool = Field(True, description="apply request rate limits (only while authentication is on)")
    window_s: int = Field(60, ge=1, le=3600, description="length of one rate-limit window in seconds")
    api_key: int = Field(1000, ge=1, description="requests per window for one API key")
    user: int = Field(100, ge=1, description="requests per window for one user session (JWT)")
    address: int = Field(600, ge=1, description="requests per window for one client address sending no credential")
    loopback_exempt: bool = Field(
        True, description="requests without a credential from 127.0.0.0/8 or ::1 skip the per-address budget"
    )
    redis_prefix: str = Field("agentwatch:", max_length=64, description="prefix of every Redis key the limits use")


class LoginThrottleSettings(BaseModel):
    """Failed logins allowed before further attempts are refused for a while."""

    window_s: int = Field(900, ge=1, le=86400, description="window in which failed logins are counted")
    per_account: int = Field(5, ge=1, description="failed logins per account (known or not) per window")
    per_address: int = Field(20, ge=1, description="failed logins per client address per window")


class AuditSettings(BaseModel):
    requests: bool = Field(True, description="append every POST/PUT/PATCH/DELETE request to the audit log")


class PasswordHashSettings(BaseModel):
    """The argon2id cost of new password hashes (``[auth.password_hash]``)."""

    time_cost: int = Field(3, ge=1, le=10, description="argon2id passes over the memory")
    memory_kib: int = Field(65_536, ge=8_192, le=1_048_576, description="argon2id memory per hash, in KiB")
    parallelism: int = Field(4, ge=1, le=16, description="argon2id lanes")
