"""docs/auth.md lists every route and every setting of the access layer."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from agentwatch.api import audit, auth
from agentwatch.config import AuthSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "auth.md").read_text()


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += _keys(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_route_is_documented():
    paths = {
        r.path.replace("{key_id}", "{id}").replace("{user_id}", "{id}")
        for r in [*auth.router.routes, *audit.router.routes]
    }
    missing = sorted(p for p in paths if f"`{p}`" not in DOC)
    assert not missing, f"undocumented routes: {missing}"


def test_every_setting_is_documented():
    missing = [k for k in _keys(AuthSettings, "auth.") if f"`{k}`" not in DOC]
    assert not missing, f"undocumented settings: {missing}"
