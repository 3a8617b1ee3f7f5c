"""The body of ``POST /api/v1/federated/query`` and ``/translate``, and its time range."""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentwatch.api.errors import InvalidRequest
from agentwatch.events.model import EventError, parse_ts
from agentwatch.federated.dialect import Window
from agentwatch.federated.language import MAX_QUERY_CHARS
from agentwatch.federated.settings import TARGET_NAME, FederatedSettings, TargetSettings

LAST = re.compile(r"(\d{1,7})([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class TimeRange(BaseModel):
    """``from`` and ``to`` (RFC 3339; ``to`` defaults to now), or ``last`` (``15m``, ``24h``, ``7d``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str | None = Field(None, alias="from", max_length=64)
    to: str | None = Field(None, max_length=64)
    last: str | None = Field(None, max_length=16, description="a duration back from now: 90s, 15m, 24h, 7d")

    @model_validator(mode="after")
    def _one_form(self) -> TimeRange:
        if self.last is not None and (self.from_ is not None or self.to is not None):
            raise ValueError("give either last, or from (and to), not both")
        if self.last is None and self.from_ is None:
            raise ValueError("give last, or from (and to)")
        if self.last is not None and LAST.fullmatch(self.last) is None:
            raise ValueError("last must be a duration such as 90s, 15m, 24h or 7d")
        return self


class FederatedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(
        min_length=1, max_length=MAX_QUERY_CHARS, description="the filter, in the federated query language"
    )
    targets: list[str] | None = Field(
        None, min_length=1, max_length=32, description="target names; every configured target when left out"
    )
    time_range: TimeRange | None = None


def _instant(value: str, field: str) -> float:
    try:
        return parse_ts(value, field)
    except EventError:
        raise InvalidRequest(f"{field}: must be an RFC 3339 timestamp") from None


def window(tr: TimeRange | None, settings: FederatedSettings, now: float | None = None) -> Window:
    now = time.time() if now is None else now
    if tr is None:
        return Window(now - settings.default_window_s, now)
    if tr.last is not None:
        found = LAST.fullmatch(tr.last)
        assert found is not None  # noqa: S101 (checked by the model)
        return _bounded(Window(now - int(found[1]) * UNITS[found[2]], now), settings)
    assert tr.from_ is not None  # noqa: S101 (checked by the model)
    start = _instant(tr.from_, "time_range.from")
    end = _instant(tr.to, "time_range.to") if tr.to is not None else now
    if start > end:
        raise InvalidRequest("time_range: from must not be after to")
    return _bounded(Window(start, end), settings)


def _bounded(w: Window, settings: FederatedSettings) -> Window:
    if w.end - w.start > settings.max_window_s:
        raise InvalidRequest(f"time_range: wider than federated.max_window_s ({settings.max_window_s:g} s)")
    return w


def chosen(names: list[str] | None, settings: FederatedSettings) -> list[TargetSettings]:
    """The targets a query names, in its order (every configured one when it names none)."""
    by_name = {t.name: t for t in settings.targets}
    if names is None:
        if not by_name:
            raise InvalidRequest("targets: no target is configured ([federated] targets)")
        return list(settings.targets)
    out: list[TargetSettings] = []
    for i, name in enumerate(names):
        if not isinstance(name, str) or re.fullmatch(TARGET_NAME, name) is None:
            raise InvalidRequest(f"targets.{i}: must be a target name matching {TARGET_NAME}")
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            raise InvalidRequest(f"targets.{i}: unknown target {name!r} (configured: {known})")
        if by_name[name] in out:
            raise InvalidRequest(f"targets.{i}: {name!r} is named twice")
        out.append(by_name[name])
    return out


def shown_window(w: Window) -> dict[str, Any]:
    return {"from": w.iso(w.start), "to": w.iso(w.end)}
