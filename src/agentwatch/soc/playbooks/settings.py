"""Settings of the playbooks capability (``[playbooks]`` in the config file, ``AGENTWATCH_PLAYBOOKS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlaybookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting is refused, not ignored
    automatic: bool = Field(True, description="run the enabled playbooks with an automatic trigger on new alerts")
    allow_private_urls: bool = Field(
        False, description="let notify_webhook steps reach loopback and private addresses (metadata services never)"
    )
    max_playbooks: int = Field(1000, ge=1, le=100_000, description="playbooks kept; a creation past it answers 409")
    max_runs_per_playbook: int = Field(
        1000, ge=10, le=1_000_000, description="runs kept per playbook; the oldest go when a new one is stored"
    )
    queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="automatic runs waiting to start; past it they are dropped and counted"
    )
    refresh_s: float = Field(
        5.0, gt=0, le=3600, description="how often a node re-reads the automatic playbooks (other nodes' changes)"
    )
    execute_wait_s: float = Field(
        10.0,
        ge=0,
        le=120,
        description="how long POST .../execute waits for the run; a longer run is answered 202 and goes on "
        "in the background",
    )
    stale_run_s: float = Field(
        60.0,
        ge=2,
        le=3600,
        description="a running run whose process gave no heartbeat for this long (it beats every "
        "min(5, stale_run_s/4) s) is ended interrupted; the same on every node sharing the store",
    )
    webhook_max_response_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="notify_webhook: largest receiver answer read"
    )
