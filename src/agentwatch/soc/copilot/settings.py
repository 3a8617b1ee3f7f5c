"""Settings of the copilot (``[copilot]`` in the config file, ``AGENTWATCH_COPILOT__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CopilotSettings(BaseModel):
    action_ttl_s: int = Field(
        900, ge=30, le=86_400, description="how long an offered action may be run, in seconds (once, by its caller)"
    )
    max_per_kind: int = Field(10, ge=1, le=100, description="at most this many suggestions of one kind per answer")
    stale_days: float = Field(7.0, gt=0, le=365, description="an open case with no activity for this long is stale")
    sla_warn_minutes: int = Field(
        30, ge=1, le=10_080, description="an alert whose SLA target falls due within this many minutes is due soon"
    )
    rule_window_days: int = Field(
        7, ge=1, le=90, description="the alert volume of a rule is counted over this many days"
    )
    noisy_alerts: int = Field(
        50, ge=1, le=1_000_000, description="a rule raising at least this many alerts in the window is noisy"
    )
    noisy_fp_ratio: float = Field(
        0.5, gt=0, le=1, description="a rule whose labelled alerts are false positives at least this often is noisy"
    )
    min_labelled: int = Field(3, ge=1, le=10_000, description="labelled alerts needed before the ratio counts")
    playbook_runs: int = Field(10, ge=1, le=1000, description="a playbook's newest runs looked at for failures")
    summary_cache_entries: int = Field(
        1000, ge=1, le=100_000, description="LLM summaries kept in memory (one per alert, case, rule or playbook)"
    )
    summary_cache_ttl_s: float = Field(
        600.0, gt=0, le=86_400, description="how long a kept LLM summary is reused while its input is unchanged"
    )
    summary_in_flight: int = Field(
        32,
        ge=1,
        le=10_000,
        description="LLM summaries being made at once (identical requests share one); past it a summary is left out",
    )
