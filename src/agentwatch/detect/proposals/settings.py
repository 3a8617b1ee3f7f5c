"""Settings of the detection proposals (``[proposals]`` in the config file, ``AGENTWATCH_PROPOSALS__*``).

Imports only pydantic: ``agentwatch.config`` imports it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProposalSettings(BaseModel):
    window_s: float = Field(
        7 * 86_400.0, ge=60, le=90 * 86_400, description="how far back (event time) an eval replays stored events"
    )
    max_window_events: int = Field(
        20_000, ge=100, le=1_000_000, description="newest stored events of the window an eval replays, at most"
    )
    max_window_hits: int = Field(
        100, ge=0, le=1_000_000, description="stored events a proposed rule may match in the window and still pass"
    )
    max_feedback_alerts: int = Field(
        2_000, ge=1, le=100_000, description="newest alerts with TP/FP feedback an eval checks the rule against"
    )
    max_proposals: int = Field(10_000, ge=1, le=1_000_000, description="proposals kept; more answers 507")
    max_eval_s: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="seconds an eval or baseline run may replay stored data; past it the run stops and an eval fails",
    )
    max_running_evals: int = Field(
        2, ge=1, le=64, description="evals and baseline runs at once on this node; more answers 429"
    )
