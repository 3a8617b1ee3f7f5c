"""Settings of federated search (``[federated]`` in the config file, ``AGENTWATCH_FEDERATED__*``).

A target's credential is never in the configuration: ``credential_env`` names the environment
variable that holds it, read when a query is sent, never shown or logged.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from agentwatch.federated.dialect import FIELD_NAME
from agentwatch.federated.language import FIELDS

TARGET_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
SPLUNK_INDEX = r"^[A-Za-z0-9_][A-Za-z0-9_*-]{0,79}$"
SENTINEL_TABLE = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
WORKSPACE = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"
ELASTIC_INDEX = r"^[a-z0-9*][a-z0-9_.*,-]{0,254}$"
ESQL_MAX_ROWS = 10_000  # rows an ES|QL query answers at most (Elasticsearch's default ceiling)
MAPPABLE = frozenset({*FIELDS, "ts"})
Kind = Literal["splunk", "sentinel", "elastic", "agentwatch_local"]


class TargetSettings(BaseModel):
    """One place a federated query goes."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TARGET_NAME, description="the target's name, as targets[] of a query names it")
    kind: Kind = Field(description="splunk, sentinel, elastic, or agentwatch_local (this server's own events)")
    allow_private: bool = Field(False, description="let url be a loopback or private address")
    url: str | None = Field(
        None,
        max_length=2048,
        description="base URL (Splunk management port, Log Analytics API, Elasticsearch); passes the SSRF guard",
    )
    index: str | None = Field(None, description="splunk: the index searched (main); elastic: the index pattern")
    table: str | None = Field(None, pattern=SENTINEL_TABLE, description="sentinel: the table queried")
    workspace: str | None = Field(None, pattern=WORKSPACE, description="sentinel: the Log Analytics workspace id")
    field_map: dict[str, str] = Field(
        default_factory=dict, description="canonical field (and ts) -> the target's field name, over the defaults"
    )
    credential_env: str | None = Field(
        None,
        pattern=ENV_NAME,
        description="name of the environment variable holding the token or API key (never the secret itself)",
    )
    timeout_s: float = Field(15.0, gt=0, le=300, description="longest wait for this target's answer")
    max_rows: int = Field(1000, ge=1, le=10_000, description="rows taken from this target; more: status truncated")
    max_response_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest answer read from this target"
    )

    @field_validator("field_map")
    @classmethod
    def _field_map(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) > len(MAPPABLE):
            raise ValueError(f"at most {len(MAPPABLE)} entries")
        for key, name in v.items():
            if key not in MAPPABLE:
                raise ValueError(f"{key[:64]!r} is not a canonical field ({', '.join(sorted(MAPPABLE))})")
            if not isinstance(name, str) or re.fullmatch(FIELD_NAME, name) is None:
                raise ValueError(f"{key}: the target's field name must match {FIELD_NAME}")
        return v

    @field_validator("url")
    @classmethod
    def _url_passes_the_ssrf_guard(cls, v: str | None, info: ValidationInfo) -> str | None:
        from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url

        if v is None:
            return v
        if "?" in v or "#" in v:  # each request's path is appended to the URL
            raise ValueError("must not carry a query or fragment (give the base URL only)")
        try:
            check_url(v, allow_private=bool(info.data.get("allow_private", False)))
        except UnresolvedHost:
            pass  # not resolvable now: its addresses are checked again at connect time
        except SSRFError as exc:
            raise ValueError(str(exc).removeprefix("url: ")) from None
        return v.rstrip("/")

    @model_validator(mode="after")
    def _fits_its_kind(self) -> TargetSettings:
        k = self.kind
        if k == "agentwatch_local":
            if self.url or self.field_map or self.credential_env:
                raise ValueError("agentwatch_local: url, field_map and credential_env do not apply")
            return self
        if k != "sentinel" and not self.url:
            raise ValueError(f"{k}: url is required")
        if k == "splunk":
            self.index = self.index or "main"
            if re.fullmatch(SPLUNK_INDEX, self.index) is None:
                raise ValueError(f"index: must match {SPLUNK_INDEX}")
        if k == "elastic" and (self.index is None or re.fullmatch(ELASTIC_INDEX, self.index) is None):
            raise ValueError(f"elastic: index is required and must match {ELASTIC_INDEX}")
        if k == "elastic" and self.max_rows > ESQL_MAX_ROWS - 1:
            # ES|QL answers at most 10,000 rows whatever LIMIT asks; one row past max_rows is
            # asked to see a cut-off answer, so that row must still fit
            raise ValueError(f"elastic: max_rows must be at most {ESQL_MAX_ROWS - 1} (ES|QL answers {ESQL_MAX_ROWS})")
        if k == "sentinel":
            self.url = self.url or "https://api.loganalytics.io"
            if not self.workspace or not self.table:
                raise ValueError("sentinel: workspace and table are required")
        return self


def _local() -> list[TargetSettings]:
    return [TargetSettings(name="local", kind="agentwatch_local")]


class FederatedSettings(BaseModel):
    enabled: bool = Field(True, description="serve the federated query routes")
    targets: list[TargetSettings] = Field(
        default_factory=_local, max_length=32, description="the SIEMs (and this server) a query can fan out to"
    )
    default_window_s: float = Field(
        86_400.0, ge=60, le=365 * 86_400, description="time range searched when a query gives none"
    )
    max_window_s: float = Field(90 * 86_400.0, ge=60, le=3650 * 86_400, description="widest time range a query may ask")

    @field_validator("targets")
    @classmethod
    def _names_are_unique(cls, v: list[TargetSettings]) -> list[TargetSettings]:
        names = [t.name for t in v]
        if len(names) != len(set(names)):
            raise ValueError("target names must be unique")
        return v
