"""The bodies of ``POST /api/v1/approvals`` (a request) and of ``:approve`` / ``:reject``."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from agentwatch.api.text_rules import printable_title, shows_nothing
from agentwatch.soc.approvals.kinds import GATES, KINDS

MAX_TEXT = 2000
MAX_TTL_S = 365 * 86_400


def _prose(value: str) -> str:
    """Free text of a few lines: something visible, no NUL."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if shows_nothing(value):
        raise ValueError("must not be blank (nothing visible)")
    return value


Title = Annotated[str, AfterValidator(printable_title)]
Prose = Annotated[str, AfterValidator(_prose)]


class RequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=32, description=f"one of {', '.join(KINDS)}")
    subject: Title = Field(min_length=1, max_length=256, description="what the request is about")
    action: Title = Field(min_length=1, max_length=512, description="what will be done once approved")
    reason: Prose = Field(min_length=1, max_length=MAX_TEXT, description="why it should be done")
    expires_in_s: int | None = Field(
        None,
        ge=60,
        le=MAX_TTL_S,
        strict=True,
        description="seconds to wait for a decision (at most approvals.max_ttl_s)",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v in GATES:
            raise ValueError(f"{v} requests are made by the capability that holds the action, not through this route")
        if v not in KINDS:
            raise ValueError(f"must be one of {', '.join(KINDS)}")
        return v


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Prose | None = Field(None, min_length=1, max_length=MAX_TEXT, description="why (optional)")
