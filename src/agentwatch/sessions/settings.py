"""Settings of the AOP collector and the session rules (``[aop]`` in TOML, ``AGENTWATCH_AOP__*``).

This module imports only pydantic so that ``agentwatch.config`` can use it without cycles.
The rule thresholds default to the values the original collector documents.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AopSettings(BaseModel):
    # -- ingest ----------------------------------------------------------
    max_event_bytes: int = Field(64 * 1024, ge=1024, description="largest single AOP event (413 above it)")
    max_batch_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest batch body (JSON array / NDJSON)")
    max_batch_items: int = Field(1_000, ge=1, le=100_000, description="most events in one batch request")

    # -- second listener for SDKs that assume the original port --------------
    compat_listener: bool = Field(False, description="also serve the AOP routes on compat_port")
    compat_port: int = Field(4317, ge=1, le=65535, description="port of the optional second listener")

    # -- live stream -----------------------------------------------------
    ping_interval_s: float = Field(15.0, gt=0, le=3600, description="seconds between ': ping' SSE comments")
    stream_buffer: int = Field(1_000, ge=1, description="frames buffered per SSE client before it is cut")
    stream_max_clients: int = Field(50, ge=1, description="concurrent /stream clients (503 above)")
    replay_limit: int = Field(10_000, ge=0, description="most stored frames replayed on a Last-Event-ID resume")

    # -- stall -----------------------------------------------------------
    stall_after_s: float = Field(300.0, gt=0, description="a running session silent this long becomes 'timeout'")
    stall_check_interval_s: float = Field(10.0, gt=0, description="how often running sessions are checked for stall")

    # -- the three original rules ----------------------------------------
    loop_min_calls: int = Field(5, ge=2, description="loop: calls of one tool within the window")
    loop_window_s: float = Field(60.0, gt=0, description="loop: window in event-time seconds")
    loop_repeat_ratio: float = Field(0.4, ge=0, le=1, description="loop: share of those calls with a repeated input")
    confidence_streak: int = Field(3, ge=1, description="confidence drop: consecutive low-confidence thoughts")
    low_confidence_below: float = Field(0.4, ge=0, le=1, description="a numeric confidence under this is 'low'")
    error_streak: int = Field(3, ge=1, description="error cascade: consecutive failed tool ends (critical)")

    # -- budgets ---------------------------------------------------------
    token_budget: int = Field(
        1_000_000, ge=0, description="tokens per session before a budget alert; 0 disables; a session may set its own"
    )
    cost_budget_usd: float = Field(
        10.0, ge=0, description="cost per session (USD) before a budget alert; 0 disables; a session may set its own"
    )

    # -- repeated tool failure across sessions of one agent ---------------
    tool_failure_sessions: int = Field(3, ge=2, description="distinct sessions of one agent where one tool failed")
    tool_failure_window_s: float = Field(3600.0, gt=0, description="event-time window of the cross-session rule")
