"""A rotation as users write it (the body of ``POST``/``PUT /api/v1/oncall/rotations``), its
rules, and its exact form for :mod:`schedule`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from agentwatch.api.text_rules import assignee_name, printable_title
from agentwatch.events.model import EventError, parse_ts
from agentwatch.soc.oncall.schedule import HOUR_US, Override, Rotation, from_us, to_us

MAX_MEMBERS = 50
MAX_OVERRIDES = 200
MAX_SHIFT_HOURS = 24 * 90
MAX_OVERRIDE_DAYS = 366
FIRST_US = 0
END_US = to_us(datetime(9000, 1, 1, tzinfo=UTC))
ID_LIKE_RE = re.compile(r"[0-9a-fA-F-]{36}")  # what a rotation id looks like (``whoison`` takes either)
OFFSET_RE = re.compile(r"(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)")


def parse_instant(value: str, field: str) -> int:
    """RFC 3339 text as whole microseconds since the epoch; ValueError("rule") otherwise."""
    try:
        parse_ts(value, field)  # the API's one rule of what a timestamp is
    except EventError as exc:
        raise ValueError(exc.rule) from None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    us = to_us(dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC))
    if not FIRST_US <= us < END_US:  # room for the shifts after it, shown in any offset
        raise ValueError("must be from 1970-01-01T00:00:00Z to before 9000-01-01T00:00:00Z")
    return us


def offset_minutes(offset: str) -> int:
    if offset == "Z":
        return 0
    sign = -1 if offset[0] == "-" else 1
    return sign * (int(offset[1:3]) * 60 + int(offset[4:6]))


Member = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(assignee_name)]
Stamp = Annotated[str, Field(min_length=1, max_length=64)]


def _stamp(value: str, field: str) -> str:
    parse_instant(value, field)
    return value


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    member: Member
    from_: Stamp = Field(alias="from", description="RFC 3339: the override begins")
    until: Stamp = Field(description="RFC 3339: the override ends (exclusive)")

    @field_validator("from_", "until")
    @classmethod
    def _stamps(cls, v: str) -> str:
        return _stamp(v, "time")

    @model_validator(mode="after")
    def _order(self) -> OverrideIn:
        start, end = parse_instant(self.from_, "from"), parse_instant(self.until, "until")
        if end <= start:
            raise ValueError("until must be later than from")
        if end - start > MAX_OVERRIDE_DAYS * 24 * HOUR_US:
            raise ValueError(f"an override lasts at most {MAX_OVERRIDE_DAYS} days")
        return self


class RotationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)]
    members: list[Member] = Field(min_length=1, max_length=MAX_MEMBERS, description="in shift order")
    shift_hours: int = Field(ge=1, le=MAX_SHIFT_HOURS, strict=True, description="length of one shift")
    start: Stamp = Field(description="RFC 3339: the first shift (members[0]) begins")
    utc_offset: str = Field("Z", max_length=6, description="offset the answers show times in: Z or +HH:MM / -HH:MM")
    overrides: list[OverrideIn] = Field(default_factory=list, max_length=MAX_OVERRIDES)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if ID_LIKE_RE.fullmatch(v) is not None:
            raise ValueError("must not look like a rotation id (36 hex digits and dashes)")
        return v

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        return _stamp(v, "start")

    @field_validator("utc_offset")
    @classmethod
    def _offset(cls, v: str) -> str:
        if OFFSET_RE.fullmatch(v) is None:
            raise ValueError("must be Z or an offset from -14:00 to +14:00 (+HH:MM)")
        return v

    @field_validator("members")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for i, m in enumerate(v):
            if m.casefold() in seen:
                raise ValueError(f"members.{i} ({m}) is listed twice")
            seen.add(m.casefold())
        return v

    @model_validator(mode="after")
    def _no_overlap(self) -> RotationIn:
        spans = sorted(
            (parse_instant(o.from_, "from"), parse_instant(o.until, "until"), i) for i, o in enumerate(self.overrides)
        )
        for (_s1, e1, i1), (s2, _e2, i2) in zip(spans, spans[1:], strict=False):
            if s2 < e1:
                raise ValueError(f"overrides.{max(i1, i2)} overlaps overrides.{min(i1, i2)}")
        return self


def stored(body: RotationIn) -> dict[str, Any]:
    """The rotation as stored (times as microseconds)."""
    return {
        "members": list(body.members),
        "shift_hours": body.shift_hours,
        "start": parse_instant(body.start, "start"),
        "utc_offset": body.utc_offset,
        "overrides": sorted(
            ([o.member, parse_instant(o.from_, "from"), parse_instant(o.until, "until")] for o in body.overrides),
            key=lambda o: o[1],
        ),
    }


def rotation(spec: dict[str, Any]) -> Rotation:
    return Rotation(
        members=tuple(spec["members"]),
        shift_us=spec["shift_hours"] * HOUR_US,
        start=spec["start"],
        overrides=tuple(Override(m, s, e) for m, s, e in spec["overrides"]),
    )


def spec_json(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored rotation as the API shows it (times in its ``utc_offset``)."""
    off = offset_minutes(spec["utc_offset"])
    return {
        "members": spec["members"],
        "shift_hours": spec["shift_hours"],
        "start": from_us(spec["start"], off),
        "utc_offset": spec["utc_offset"],
        "overrides": [
            {"member": m, "from": from_us(s, off), "until": from_us(e, off)} for m, s, e in spec["overrides"]
        ],
    }
