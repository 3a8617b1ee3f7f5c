"""Settings: one object, read from a TOML file and ``AGENTWATCH_*`` environment variables.

Precedence (highest first): explicit keyword arguments, environment variables
(``AGENTWATCH_PORT=8000``, nested with a double underscore:
``AGENTWATCH_PIPELINE__BATCH_SIZE=500``), the TOML file named by
``AGENTWATCH_CONFIG`` (or passed to :func:`load_settings`), then defaults.

Every other ``AGENTWATCH_*`` variable must name a setting or be one of ``OTHER_VARIABLES``:
:func:`unknown_variables` finds the rest (a misspelt name would otherwise be ignored).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agentwatch.capture.settings import CaptureSettings
from agentwatch.detect.proposals.settings import ProposalSettings
from agentwatch.detect.settings import DetectionSettings
from agentwatch.discovery.settings import DiscoverySettings
from agentwatch.federated.settings import FederatedSettings
from agentwatch.hunts.settings import HuntSettings
from agentwatch.intel.settings import IntelSettings
from agentwatch.marketplace.settings import MarketplaceSettings
from agentwatch.masking import mask
from agentwatch.sessions.settings import AopSettings
from agentwatch.soc.approvals.settings import ApprovalSettings
from agentwatch.soc.auth.settings import (
    AuditSettings,
    LoginThrottleSettings,
    PasswordHashSettings,
    RateLimitSettings,
)
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.honeytokens.settings import HoneytokenSettings
from agentwatch.soc.investigations.settings import InvestigationSettings
from agentwatch.soc.passkeys.settings import PasskeySettings
from agentwatch.soc.playbooks.settings import PlaybookSettings
from agentwatch.soc.push.settings import PushSettings
from agentwatch.soc.sla.settings import SlaSettings, unknown_output
from agentwatch.soc.sso.settings import SsoSettings
from agentwatch.ueba.settings import UebaSettings


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="largest accepted request body, after gzip decoding"
    )
    max_events_per_request: int = Field(10_000, ge=1, description="largest number of events in one request")
    max_event_bytes: int = Field(1024 * 1024, ge=256, description="largest single event")
    max_body_bytes_in_flight: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024**3,
        description=(
            "request-body bytes the server holds at once, summed over every request on every listener "
            "(counted as they arrive, gzip counted inflated); past it: 503 with Retry-After"
        ),
    )

    @model_validator(mode="after")
    def _budget_holds_one_body(self) -> IngestSettings:
        if self.max_body_bytes_in_flight < self.max_body_bytes:
            raise ValueError(
                "ingest.max_body_bytes_in_flight: must be at least ingest.max_body_bytes "
                f"({self.max_body_bytes}), or the largest ingest body could never be read"
            )
        return self


class PipelineSettings(BaseModel):
    queue_size: int = Field(100_000, ge=1, description="events waiting for commit before the overflow policy applies")
    batch_size: int = Field(2_000, ge=1, description="largest micro-batch committed at once")
    batch_ms: float = Field(
        0.0,
        ge=0,
        description="extra wait to fill a micro-batch (0: commit what is queued; concurrent requests share commits)",
    )
    inline_commit_events: int = Field(
        64,
        ge=0,
        le=10_000,
        description="SQLite: micro-batches of at most this many events commit on the event loop's thread (0: never)",
    )
    overflow: Literal["reject", "block"] = Field(
        "reject",
        description="reject: answer 503 with Retry-After when the queue is full; block: wait up to block_timeout_s",
    )
    block_timeout_s: float = Field(5.0, ge=0)
    shutdown_drain_s: float = Field(30.0, ge=0, description="longest wait to commit accepted events on shutdown")
    settle_timeout_s: float = Field(
        30.0,
        gt=0,
        le=600,
        description="scale-out: longest wait, before deleting a session, for the workers to commit what was accepted",
    )
    role: Literal["standalone", "api", "worker"] = Field(
        "standalone",
        description="standalone: commit in-process; api: hand events to NATS JetStream; worker: consume and commit",
    )
    nats_stream: str = Field("AGENTWATCH", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="JetStream stream name")
    nats_subject: str = Field(
        "agentwatch", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="subject prefix (events, live fan-out)"
    )


class LiveSettings(BaseModel):
    client_buffer: int = Field(1_000, ge=1, description="frames buffered per live client before the oldest is dropped")
    max_clients: int = Field(100, ge=1)
    stats_interval_ms: int = Field(1_000, ge=50)


class AuthSettings(BaseModel):
    enabled: bool = True
    jwt_secret: SecretStr | None = Field(
        None, description="HMAC key for access tokens; generated and kept in the data dir when unset"
    )
    access_ttl_s: int = Field(1800, ge=30)
    refresh_ttl_s: int = Field(7 * 24 * 3600, ge=60)
    open_ingest_on_loopback: bool = Field(
        True, description="let agent SDKs post events without a credential while the server binds to loopback"
    )
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    login: LoginThrottleSettings = Field(default_factory=LoginThrottleSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    password_hash: PasswordHashSettings = Field(default_factory=PasswordHashSettings)


class LlmSettings(BaseModel):
    """The OpenAI-compatible chat-completions backend that explains alerts (``/explain``)."""

    enabled: bool = Field(False, description="explain alerts with the LLM backend (off: the explain route answers 503)")
    allow_private: bool = Field(
        False, description="let base_url be a loopback or private address (a model served on this host or network)"
    )
    base_url: str | None = Field(
        None,
        validate_default=True,
        description="API root of an OpenAI-compatible backend, e.g. http://127.0.0.1:11434/v1 (passes the SSRF guard)",
    )
    model: str | None = Field(
        None, min_length=1, max_length=256, validate_default=True, description="model id sent to the backend"
    )
    api_key: SecretStr | None = Field(None, description="sent as 'Authorization: Bearer <key>'; never logged")
    timeout_s: float = Field(30.0, gt=0, le=600, description="longest wait for one explanation, in all")
    explanation_ttl_s: float = Field(86_400.0, gt=0, le=365 * 86_400, description="how long an explanation is kept")
    max_tokens: int = Field(800, ge=1, le=32_768, description="longest explanation asked of the model, in tokens")
    hunt_max_query_chars: int = Field(
        500, ge=16, le=4_000, description="longest question POST /api/v1/hunt takes, in characters"
    )

    @field_validator("base_url")
    @classmethod
    def _base_url_passes_the_ssrf_guard(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            if info.data.get("enabled"):
                raise ValueError("required when llm.enabled is true")
            return None
        from agentwatch.net.ssrf import SSRFError, UnresolvedHost, check_url

        allow_private = bool(info.data.get("allow_private", False))
        try:
            check_url(v, allow_private=allow_private)
        except UnresolvedHost:
            pass  # not resolvable now (the backend may start later): its addresses are checked at connect time
        except SSRFError as exc:
            raise ValueError(str(exc).removeprefix("url: ") + _private_hint(v, allow_private)) from None
        parts = urlsplit(v)
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment (it is the API root, e.g. http://host:port/v1)")
        return v.rstrip("/")

    @field_validator("model")
    @classmethod
    def _model_when_enabled(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None and info.data.get("enabled"):
            raise ValueError("required when llm.enabled is true")
        return v


class MaintenanceSettings(BaseModel):
    """The server's periodic chores (``agentwatch.maintenance``): deleting expired cached data."""

    interval_s: float = Field(
        600.0,
        ge=0.5,
        le=86_400,
        allow_inf_nan=False,
        description="seconds between two rounds of the periodic chores (deleting expired alert explanations)",
    )
    events_retention_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="events stored longer ago than this many days are deleted by a periodic chore; 0 keeps them all",
    )
    touches_retention_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="honeytoken touches older than this many days are deleted by a periodic chore, except those "
        "an alert that is not closed, or a case that is not closed, still holds; 0 keeps them all",
    )
    ueba_baseline_idle_days: int = Field(
        0,
        ge=0,
        le=36_500,
        description="UEBA baselines not updated for this many days are deleted by a periodic chore; 0 keeps them all",
    )


def _private_hint(url: str, allow_private: bool) -> str:
    """How to let ``url`` in, when only ``llm.allow_private`` stands in its way."""
    from agentwatch.net.ssrf import SSRFError, check_url

    if allow_private:
        return ""
    try:
        check_url(url, allow_private=True)
    except SSRFError:
        return ""
    return " (set llm.allow_private to reach a backend on this host or network)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTWATCH_", env_nested_delimiter="__", extra="forbid", toml_file=None
    )

    host: str = Field("127.0.0.1", description="address the server binds to")
    port: int = Field(7777, ge=0, le=65535)
    processes: int = Field(
        1, ge=1, le=64, description="server processes sharing the listening socket and the store (see Processes)"
    )
    processes_spread: Literal["connection", "address"] = Field(
        "connection",
        description="how new connections reach the processes: by the kernel, then evened out; or by client address",
    )
    data_dir: Path = Field(Path("~/.agentwatch").expanduser(), description="where the SQLite store and keys live")
    database_url: SecretStr | None = Field(
        None, description="sqlite:///path or postgresql://user@host/db; default: SQLite in data_dir"
    )
    redis_url: SecretStr | None = None
    nats_url: SecretStr | None = None
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API; empty means same-origin only"
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    aop: AopSettings = Field(default_factory=AopSettings)
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    intel: IntelSettings = Field(default_factory=IntelSettings)
    marketplace: MarketplaceSettings = Field(default_factory=MarketplaceSettings)
    proposals: ProposalSettings = Field(default_factory=ProposalSettings)
    ueba: UebaSettings = Field(default_factory=UebaSettings)
    honeytokens: HoneytokenSettings = Field(default_factory=HoneytokenSettings)
    playbooks: PlaybookSettings = Field(default_factory=PlaybookSettings)
    passkeys: PasskeySettings = Field(default_factory=PasskeySettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    hunts: HuntSettings = Field(default_factory=HuntSettings)
    investigations: InvestigationSettings = Field(default_factory=InvestigationSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    sso: SsoSettings = Field(default_factory=SsoSettings)
    copilot: CopilotSettings = Field(default_factory=CopilotSettings)
    federated: FederatedSettings = Field(default_factory=FederatedSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)

    @field_validator("host")
    @classmethod
    def _host_is_address(cls, v: str) -> str:
        if v in ("localhost",):
            return v
        ipaddress.ip_address(v)
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @model_validator(mode="after")
    def _scale_out_needs_nats(self) -> Settings:
        if self.pipeline.role != "standalone" and self.nats_url is None:
            raise ValueError(f"nats_url: required when pipeline.role is {self.pipeline.role!r}")
        return self

    @model_validator(mode="after")
    def _spread_by_address_on_linux(self) -> Settings:
        if self.processes_spread == "address" and not sys.platform.startswith("linux"):
            raise ValueError("processes_spread: 'address' needs Linux (a BPF program on SO_REUSEPORT sockets)")
        return self

    @model_validator(mode="after")
    def _processes_share_a_store(self) -> Settings:
        if self.processes > 1 and self.database_url is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                url = make_url(self.database_url.get_secret_value())
            except ArgumentError:
                return self  # refused, naming database_url, when the store is opened
            if url.get_backend_name() == "sqlite" and (
                url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
            ):
                raise ValueError(
                    "processes: above 1 needs a store the processes share; an in-memory SQLite database is"
                    " each process's own (set database_url to a file or to PostgreSQL)"
                )
        return self

    @model_validator(mode="after")
    def _sla_notices_name_outputs(self) -> Settings:
        why = unknown_output(self.detection.outputs, self.sla.notify_outputs)
        if why is not None:
            raise ValueError(why)
        return self

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        return ipaddress.ip_address(self.host).is_loopback

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'agentwatch.db'}"

    def masked(self) -> dict[str, Any]:
        """The settings as JSON, every secret replaced by ``"***"`` (also credentials inside URLs)."""
        return mask(self.model_dump(mode="json"))  # SecretStr fields already dump as stars


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; the TOML file is ``config_file`` or ``$AGENTWATCH_CONFIG``."""
    path = config_file or os.environ.get("AGENTWATCH_CONFIG")
    if not path:
        return Settings(**overrides)

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": Path(path)})

    return FileSettings(**overrides)


# AGENTWATCH_* variables that are not settings but are read elsewhere, accepted as they are.
OTHER_VARIABLES = frozenset(
    {
        "AGENTWATCH_CONFIG",  # the settings file (load_settings)
        "AGENTWATCH_API_KEY",  # the credential of replay, sessions and sensor
        "AGENTWATCH_SDK_SPILL",  # where the SDK keeps events it could not send (sdk.options)
        "AGENTWATCH_SERVE_INPUTS",  # set by a server with processes above 1 for its processes
        "AGENTWATCH_RELAY_SOCKET",
        "AGENTWATCH_SHARED_COUNTERS",
        "AGENTWATCH_PLACES_DIR",
        "AGENTWATCH_BALANCE_DIR",
        "AGENTWATCH_TEST_PG",  # the services the test suite uses (tests/support/services.py)
        "AGENTWATCH_TEST_REDIS",
        "AGENTWATCH_TEST_NATS",
    }
)


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each variable of ``environ`` with the settings' prefix (in any case, as the settings read
    them) that names no setting and is not one of ``OTHER_VARIABLES``, with the known name
    closest to it (None when none is close)."""
    prefix = str(Settings.model_config["env_prefix"]).upper()
    exact, open_below = _variable_names(Settings, prefix)
    known = exact | OTHER_VARIABLES
    found = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or upper in known:
            continue
        if any(upper.startswith(table + "__") for table in open_below):
            continue
        # compared without the prefix, which every name shares and which would make any two alike
        near = difflib.get_close_matches(upper[len(prefix) :], [k[len(prefix) :] for k in known], n=1, cutoff=0.75)
        found.append((name, prefix + near[0] if near else None))
    return found


def _variable_names(model: type[BaseModel], prefix: str) -> tuple[set[str], set[str]]:
    """The variable names of ``model``'s settings, and those of its tables whose keys are free
    (``AGENTWATCH_CAPTURE__ROUTES__<NAME>__...``)."""
    exact: set[str] = set()
    open_below: set[str] = set()
    for name, field in model.model_fields.items():
        variable = prefix + name.upper()
        exact.add(variable)
        inner = _without_none(field.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            more, tables = _variable_names(inner, variable + "__")
            exact |= more
            open_below |= tables
        elif get_origin(inner) is dict or inner is Any:
            open_below.add(variable)
    return exact, open_below


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation
