"""Settings of the approvals capability (``[approvals]`` in the config file, ``AGENTWATCH_APPROVALS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY_S = 86_400


class ApprovalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is refused, not ignored
    default_ttl_s: int = Field(
        DAY_S, ge=60, le=365 * DAY_S, description="how long a request waits for a decision when it names no expiry"
    )
    max_ttl_s: int = Field(
        7 * DAY_S, ge=60, le=365 * DAY_S, description="the longest expiry a request may ask for (expires_in_s)"
    )
    expiry_interval_s: float = Field(
        30.0, ge=1, le=3600, description="time between two passes that mark overdue requests expired"
    )
    max_pending: int = Field(
        10_000, ge=1, le=1_000_000, description="requests waiting for a decision at once; a new one past it answers 507"
    )
    max_pending_per_requester: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="requests one person (or the playbook trigger) may have waiting at once; past it 507, "
        "so nobody crowds out the others",
    )
    keep_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="finished requests older than this are deleted (the audit log keeps each decision)",
    )

    @model_validator(mode="after")
    def _default_within_bound(self) -> ApprovalSettings:
        if self.default_ttl_s > self.max_ttl_s:
            raise ValueError("default_ttl_s: must not be longer than max_ttl_s")
        return self
