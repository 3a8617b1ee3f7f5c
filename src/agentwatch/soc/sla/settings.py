"""Settings of the SLA watch (``[sla]`` in the config file, ``AGENTWATCH_SLA__*``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from agentwatch.notify.base import MAX_NAME

MAX_NOTIFY_OUTPUTS = 16
OutputName = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


class SlaSettings(BaseModel):
    enabled: bool = Field(True, description="run the SLA watch that records breaches of the alert targets")
    interval_s: float = Field(30.0, ge=1, le=3600, description="time between two passes of the SLA watch")
    max_age_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="alerts whose life (creation or last reopening) started longer ago are no longer watched",
    )
    notify_outputs: list[OutputName] = Field(
        default_factory=list,
        max_length=MAX_NOTIFY_OUTPUTS,
        description="names of detection.outputs each new breach is sent to (none: no breach notices)",
    )
    notify_oncall: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="id or name of the on-call rotation whose member on call gets each new breach as a Web Push",
    )

    @field_validator("notify_outputs")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("names an output twice")
        return v

    @property
    def notifying(self) -> bool:
        """Whether a new breach is to be sent anywhere."""
        return bool(self.notify_outputs) or self.notify_oncall is not None


def output_names(outputs: list[Any]) -> list[str | None]:
    """The name of each of ``detection.outputs`` (its ``name``, else its ``kind``)."""
    return [o.get("name") or o.get("kind") if isinstance(o, dict) else None for o in outputs]


def unknown_output(outputs: list[Any], wanted: list[str]) -> str | None:
    """Why ``sla.notify_outputs`` (``wanted``) cannot be used with ``detection.outputs``, or None."""
    names = output_names(outputs)
    for name in wanted:
        if name not in names:
            known = ", ".join(repr(n) for n in names if isinstance(n, str)) or "none"
            return f"sla.notify_outputs: {name!r} names no output of detection.outputs (known: {known})"
    return None
