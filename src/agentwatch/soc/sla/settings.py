"""Settings of the SLA watch (``[sla]`` in the config file, ``AGENTWATCH_SLA__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SlaSettings(BaseModel):
    enabled: bool = Field(True, description="run the SLA watch that records breaches of the alert targets")
    interval_s: float = Field(30.0, ge=1, le=3600, description="time between two passes of the SLA watch")
    max_age_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="alerts whose life (creation or last reopening) started longer ago are no longer watched",
    )
