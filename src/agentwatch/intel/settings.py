"""Settings of the intel capability (``[intel]`` in the config file, ``AGENTWATCH_INTEL__*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

FEED_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class FeedSettings(BaseModel):
    """One list of indicators fetched over HTTP(S) and kept in step with its source."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=FEED_ID, description="the feed's name; its indicators get source feed:<id>")
    allow_private: bool = Field(False, description="let url be a loopback or private address")
    url: str = Field(description="where the list is fetched (passes the SSRF guard; redirects are not followed)")
    format: Literal["lines", "csv"] = Field("lines", description="one indicator per line, or a CSV column")
    column: int = Field(0, ge=0, le=255, description="csv: the column holding the indicator (0 is the first)")
    type: Literal["ip", "cidr", "domain", "url", "md5", "sha1", "sha256", "email"] | None = Field(
        None, description="the kind of every entry; guessed per entry when left out"
    )
    severity: int | None = Field(None, ge=0, le=10, description="severity of its indicators (intel.default_severity)")
    interval_s: float = Field(3600.0, ge=60, le=7 * 86_400, description="time between two fetches")
    timeout_s: float = Field(60.0, gt=0, le=600, description="longest wait for one fetch, in all")
    max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest list accepted")

    @field_validator("url")
    @classmethod
    def _url_passes_the_ssrf_guard(cls, v: str, info: ValidationInfo) -> str:
        from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url

        try:
            check_url(v, allow_private=bool(info.data.get("allow_private", False)))
        except UnresolvedHost:
            pass  # not resolvable now: its addresses are checked again at connect time
        except SSRFError as exc:
            raise ValueError(str(exc).removeprefix("url: ")) from None
        return v


class IntelSettings(BaseModel):
    enabled: bool = Field(True, description="match every stored event against the indicators of compromise")
    max_indicators: int = Field(
        100_000, ge=1, le=10_000_000, description="indicators kept; an addition past it answers 507"
    )
    default_severity: int = Field(7, ge=0, le=10, description="severity (0-10) of an indicator given without one")
    sync_s: float = Field(
        2.0, gt=0, le=3600, description="how often a node reads the change log for the indicators other nodes changed"
    )
    changes_keep_s: float = Field(
        86_400.0, ge=60, le=30 * 86_400, description="how long the change log keeps an entry (maintenance prunes it)"
    )
    refresh_s: float = Field(
        3600.0, gt=0, le=7 * 86_400, description="longest time between two whole rebuilds of the index (a safety net)"
    )
    feeds: list[FeedSettings] = Field(default_factory=list, max_length=100, description="indicator lists to fetch")

    @field_validator("feeds")
    @classmethod
    def _feed_ids_are_unique(cls, v: list[FeedSettings]) -> list[FeedSettings]:
        ids = [f.id for f in v]
        if len(ids) != len(set(ids)):
            raise ValueError("feed ids must be unique")
        return v
