"""Request bodies of the alert ingest routes (``POST /api/v1/alerts``, ``/alerts/submit``),
each field with its size limit and rule; titles and tags follow :mod:`agentwatch.api.text_rules`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from agentwatch.alerts.model import SEVERITY_WORDS
from agentwatch.api.text_rules import printable_name, printable_title
from agentwatch.events.entities import canonical_address, canonical_domain

MAX_SUBMIT_EVENTS = 200
MAX_ALERTS = 100
ENTITY_TYPES = ("host", "user", "process", "ip", "domain", "file", "model", "agent")
AlertType = Literal["sigma", "atr", "builtin", "correlation", "ml", "ueba", "ioc", "discovery", "guard", "external"]
SEVERITY_RULE = f"must be an integer 0-10 or one of {', '.join(SEVERITY_WORDS)}"


def _severity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
        return value
    if isinstance(value, str) and value.lower() in SEVERITY_WORDS:
        return SEVERITY_WORDS[value.lower()]
    raise ValueError(SEVERITY_RULE)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Severity = Annotated[
    int,
    PlainValidator(_severity),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 10}, {"type": "string", "enum": list(SEVERITY_WORDS)}]}
    ),
]
Title = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(printable_title)]
Tag = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(printable_name)]
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_name)]
Description = Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)]
RuleId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]
ExternalId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]


class SubmitMeta(BaseModel):
    """What ``/alerts/submit`` takes beside its events: the alert to make of them."""

    model_config = ConfigDict(extra="forbid")
    title: Title = "Submitted OCSF events"
    severity: Severity | None = Field(None, description="default: the highest severity of the events")
    description: Description = ""
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    rule_id: RuleId = "aisoc.submit"
    type: AlertType = "correlation"


class SubmitBody(SubmitMeta):
    """The documented body: the alert fields and 1-200 OCSF events (64 KiB each, 1 MiB in all).
    A bare JSON array of OCSF events is taken too."""

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_SUBMIT_EVENTS)


class EntityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["host", "user", "process", "ip", "domain", "file", "model", "agent"]
    value: Annotated[str, Field(min_length=1, max_length=512), AfterValidator(printable_name)]

    @field_validator("value")
    @classmethod
    def _address(cls, value: str, info: ValidationInfo) -> str:
        """An ip is an address and a domain a name: anything else would be an entity no event names."""
        kind = info.data.get("type")
        if kind == "ip" and canonical_address(value) is None:
            raise ValueError("must be an IP address")
        if kind == "domain" and not canonical_domain(value):
            raise ValueError("must be a domain name")
        return value


class AlertIn(BaseModel):
    """One alert from an outside tool."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    severity: Severity = 5
    description: Description = ""
    source: Name = "api"
    rule_id: RuleId | None = Field(None, description="default: the source")
    type: AlertType = "external"
    entities: list[EntityIn] = Field(default_factory=list, max_length=32)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    observed_at: str | None = Field(None, max_length=64, description="RFC 3339; default: now")
    external_id: ExternalId | None = Field(None, description="the tool's own id: a retry repeats the same event")


class AlertsIn(BaseModel):
    """The documented body: one alert, or ``{"alerts": [...]}`` (1-100), or a JSON array of them."""

    model_config = ConfigDict(extra="forbid")
    alerts: list[AlertIn] = Field(min_length=1, max_length=MAX_ALERTS)
