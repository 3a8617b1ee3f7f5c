"""Settings of the detection engine, its alert outputs and the Seerflow live stream.

Imports only pydantic and the standard library: ``agentwatch.config`` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class DetectionSettings(BaseModel):
    enabled: bool = Field(True, description="run the detection engine on every committed batch")
    atr_bundled: bool = Field(True, description="load the ATR rule set shipped in the pinned pyatr package")
    pack: bool = Field(True, description="load agentwatch's own AI-agent rule pack")
    atr_rules_dirs: list[Path] = Field(default_factory=list, description="more ATR-format rule files (YAML)")
    sigma_rules_dirs: list[Path] = Field(default_factory=list, description="Sigma rule directories loaded at start")
    approved_providers: list[str] = Field(
        default_factory=list, description="LLM providers agents may use (empty: any); e.g. openai, anthropic"
    )
    approved_models: list[str] = Field(
        default_factory=list, description="model ids agents may use, shell-style wildcards allowed (empty: any)"
    )
    exfil_window_s: float = Field(600.0, gt=0, le=86_400, description="sensitive read -> new destination window")
    max_state_entries: int = Field(
        50_000, ge=100, description="entries kept by each stateful rule before the oldest are forgotten"
    )
    risk_half_life_s: float = Field(
        86_400.0, ge=60, le=90 * 86_400, description="half-life of an alert's weight in entity risk scores (event time)"
    )
    rule_suggestion_min_tp: int = Field(
        3, ge=1, le=10_000, description="true positives a pattern needs before a Sigma rule can be drafted for it"
    )
    max_uploaded_rules: int = Field(500, ge=1, description="uploaded rules kept; more answers 507")
    max_upload_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="total YAML of uploaded rules; more is 507")
    outputs: list[dict[str, Any]] = Field(
        default_factory=list,
        description="alert outputs (kind webhook/slack/teams/pagerduty, url, min_severity, ...) new alerts go to",
    )
    outputs_allow_private: bool = Field(
        False, description="let outputs reach loopback/private addresses (an on-premise receiver)"
    )
    ws_max_connections: int = Field(20, ge=1, le=10_000, description="concurrent /api/v1/ws clients")
    ws_queue_maxlen: int = Field(1_000, ge=1, le=1_000_000, description="frames buffered per ws client")
    ws_tick_interval_s: float = Field(0.25, gt=0, le=60, description="how often batch frames are flushed")
    ws_batch_max_events: int = Field(100, ge=1, le=10_000, description="events in one batch frame")
    ws_status_interval_s: float = Field(5.0, gt=0, le=3600, description="how often a status frame is sent")
    ws_filter_min_interval_ms: int = Field(500, ge=0, le=60_000, description="least time between filter frames")
