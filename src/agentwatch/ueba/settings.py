"""Settings of the UEBA capability (``[ueba]`` in the config file, ``AGENTWATCH_UEBA__*``).

The weights are what each kind of reason adds to an anomaly's score; reasons combine as
independent evidence (``1 - prod(1 - weight)``), so two weak reasons together can cross
``score_threshold`` where each alone would not.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

EntityType = Literal["host", "user", "agent", "process", "model", "ip", "domain", "file"]


class UebaSettings(BaseModel):
    enabled: bool = Field(True, description="learn per-entity baselines and raise ueba alerts on anomalies")
    entity_types: list[EntityType] = Field(
        default_factory=lambda: ["host", "user", "agent"],
        min_length=1,
        max_length=8,
        description="the kinds of entity that get a baseline",
    )
    warmup_events: int = Field(100, ge=1, le=10_000_000, description="events an entity needs before it is scored")
    warmup_span_s: float = Field(
        3 * 86_400.0,
        ge=0,
        le=365 * 86_400,
        description="event time from its first to its last event before it is scored",
    )
    score_threshold: float = Field(0.5, gt=0, le=1, description="an entity's batch scoring this or more is an anomaly")
    hour_share_threshold: float = Field(
        0.02, ge=0, le=1, description="an hour of the day (UTC) holding less than this share of its events is rare"
    )
    volume_bucket_s: float = Field(3600.0, ge=60, le=86_400, description="width of the volume buckets (event time)")
    volume_factor: float = Field(3.0, ge=1, le=1000, description="a bucket this many times the volume EMA is a burst")
    volume_min_events: int = Field(20, ge=1, le=10_000_000, description="a bucket with fewer events is never a burst")
    ema_alpha: float = Field(0.2, gt=0, le=1, description="weight of the newest bucket in the volume EMA")
    top_k: int = Field(32, ge=1, le=1024, description="sources and templates kept per entity (the most frequent)")
    max_entities: int = Field(10_000, ge=1, le=1_000_000, description="baselines kept in memory (least recent go)")
    persist_interval_s: float = Field(60.0, ge=1, le=86_400, description="how often baselines are written to the store")
    weight_new_source: float = Field(0.4, ge=0, le=1, description="score of a new source (event type, format, agent)")
    weight_new_template: float = Field(0.6, ge=0, le=1, description="score of a never-seen tool, model or process")
    weight_rare_hour: float = Field(0.6, ge=0, le=1, description="score of activity in a rare hour of the day")
    weight_burst: float = Field(0.7, ge=0, le=1, description="score of a volume burst over the EMA")
    anomaly_retention_days: float = Field(
        90.0, gt=0, le=3650, description="stored anomalies older than this (by when they were raised) are deleted"
    )
    max_anomaly_events: int = Field(50, ge=1, le=1000, description="event ids kept with one anomaly")

    @field_validator("entity_types")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("entity types must be unique")
        return v

    @model_validator(mode="after")
    def _some_reason_can_score(self) -> UebaSettings:
        weights = (self.weight_new_source, self.weight_new_template, self.weight_rare_hour, self.weight_burst)
        if self.enabled and max(weights) == 0:
            raise ValueError("at least one ueba.weight_* must be above 0, or no anomaly is ever raised")
        return self
