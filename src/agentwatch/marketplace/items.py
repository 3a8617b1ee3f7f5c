"""The shape of one marketplace item, checked before its signature is (see :mod:`.signing`).

An item that fails these checks is listed (when its slug can be read) as unverified, with the
first problem as its reason; it can never be installed."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentwatch.api.text_rules import printable_title

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
SLUG_RE = re.compile(SLUG)
VERSION = r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$"
KINDS = ("detection", "playbook", "plugin")
MAX_MANIFEST = 256 * 1024
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]


class Signature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alg: Literal["ed25519"]
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    value: str = Field(min_length=1, max_length=128)


class PluginManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    package: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+!-]+$")
    homepage: str | None = Field(None, max_length=512, pattern=r"^https://[^\s]+$")


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(min_length=1, max_length=64, pattern=SLUG)
    kind: Literal["detection", "playbook", "plugin"]
    name: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)]
    version: str = Field(max_length=20, pattern=VERSION)
    summary: str = Field(min_length=1, max_length=1000)
    author: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(printable_title)]
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    manifest: Any
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: Signature

    @model_validator(mode="after")
    def _manifest_fits_the_kind(self) -> Item:
        m = self.manifest
        if self.kind == "detection":
            if not isinstance(m, str) or not m.strip():
                raise ValueError("manifest: a detection's manifest is the Sigma rule's YAML text")
            if len(m.encode()) > MAX_MANIFEST:
                raise ValueError(f"manifest: longer than {MAX_MANIFEST} bytes")
        elif self.kind == "playbook":
            if not isinstance(m, dict):
                raise ValueError("manifest: a playbook's manifest is a playbook document (an object)")
        else:
            try:
                PluginManifest.model_validate(m)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err.get("loc", ()))
                raise ValueError(f"manifest: {where}: {err.get('msg', 'invalid')}") from None
        return self


def shape_problem(raw: Any) -> str | None:
    """None when ``raw`` has an item's shape, else the first problem ("field: rule")."""
    try:
        Item.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err.get("loc", ()))
        return msg if not loc else f"{loc}: {msg}"
    return None


def version_key(version: str) -> tuple[int, int, int]:
    a, b, c = version.split(".")
    return int(a), int(b), int(c)
