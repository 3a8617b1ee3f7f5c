"""The control library: the framework files shipped under ``frameworks/``, read and checked once.

Each file is one framework (YAML): its id, name, version and controls. A control says what in
agentwatch gives evidence for it automatically (``automatic``): detection rules by id or tag,
capabilities that must be on (names from :data:`agentwatch.compliance.assess.CAPABILITIES`) and
alert types counted over a window. A broken file is a bug in agentwatch: loading raises
:class:`LibraryError` naming the file and the field, never skips it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from agentwatch.alerts.model import ALERT_TYPES

FRAMEWORKS_DIR = Path(__file__).resolve().parent / "frameworks"
FRAMEWORK_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
CONTROL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The capability names a control may require; assess.py gives each its check.
CAPABILITY_NAMES = (
    "auth",
    "audit_log",
    "rate_limits",
    "gateway_guard",
    "secret_masking",
    "honeytokens",
    "intel",
    "detection",
    "ueba",
    "model_allowlist",
    "alert_outputs",
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,256}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{1,128}$")]


class LibraryError(ValueError):
    """A framework file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMap(_Strict):
    ids: tuple[RuleId, ...] = ()
    tags: tuple[Tag, ...] = ()
    min_enabled: int = Field(1, ge=1, le=1000)

    @model_validator(mode="after")
    def _names_something(self) -> RuleMap:
        if not self.ids and not self.tags:
            raise ValueError("rules: name at least one rule id or tag")
        return self


class AlertMap(_Strict):
    types: tuple[str, ...] = Field(min_length=1)
    window_days: int = Field(30, ge=1, le=365)
    min: int = Field(0, ge=0, le=1_000_000)  # 0: counted as information, never required

    @model_validator(mode="after")
    def _known_types(self) -> AlertMap:
        for t in self.types:
            if t not in ALERT_TYPES:
                raise ValueError(f"alerts.types: unknown alert type {t!r}")
        return self


class Automatic(_Strict):
    rules: RuleMap | None = None
    capabilities: tuple[str, ...] = ()
    alerts: AlertMap | None = None

    @model_validator(mode="after")
    def _checks(self) -> Automatic:
        for name in self.capabilities:
            if name not in CAPABILITY_NAMES:
                raise ValueError(f"capabilities: unknown capability {name!r}")
        if self.rules is None and not self.capabilities and (self.alerts is None or self.alerts.min == 0):
            raise ValueError("automatic: needs rules, capabilities or alerts with min >= 1")
        return self


class Control(_Strict):
    id: Annotated[str, StringConstraints(pattern=f"^{CONTROL_ID.pattern}$")]
    title: Text
    description: Text
    automatic: Automatic | None = None


class Framework(_Strict):
    id: Annotated[str, StringConstraints(pattern=f"^{FRAMEWORK_ID.pattern}$")]
    name: Text
    version: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    publisher: Text
    url: Annotated[str, StringConstraints(pattern=r"^https://[^\s]{1,500}$")]
    description: Text
    controls: tuple[Control, ...] = Field(min_length=1, max_length=500)

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "publisher": self.publisher,
            "url": self.url,
            "description": self.description,
            "controls": len(self.controls),
        }


@dataclass(frozen=True)
class Library:
    frameworks: tuple[Framework, ...]

    def framework(self, framework_id: str) -> Framework | None:
        return next((f for f in self.frameworks if f.id == framework_id), None)

    def control(self, control_id: str) -> tuple[Framework, Control] | None:
        for f in self.frameworks:
            for c in f.controls:
                if c.id == control_id:
                    return f, c
        return None


def _read(path: Path) -> Framework:
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
        fw = Framework.model_validate(doc)
    except yaml.YAMLError as exc:
        raise LibraryError(f"{path.name}: invalid YAML: {exc}") from None
    except ValidationError as exc:  # every problem of the file, each with where it is
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()]
        raise LibraryError(f"{path.name}: {'; '.join(problems)}") from None
    return fw


def load(directory: Path = FRAMEWORKS_DIR) -> Library:
    """Every framework under ``directory``, in file-name order; ids unique across all of them."""
    frameworks = tuple(_read(p) for p in sorted(directory.glob("*.yaml")))
    seen: dict[str, str] = {}
    for fw in frameworks:
        if fw.id in seen:
            raise LibraryError(f"{fw.id}: framework id used twice")
        seen[fw.id] = fw.id
        for c in fw.controls:
            if c.id in seen:
                raise LibraryError(f"{fw.id}: controls: id {c.id!r} is used twice")
            seen[c.id] = fw.id
    return Library(frameworks)


@functools.cache
def library() -> Library:
    """The shipped library, read once per process."""
    return load()
