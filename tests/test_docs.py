"""The README documents every route, every setting and every extension point (docs must not drift)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from agentwatch.api.factory import create_app
from agentwatch.api.security import iter_api_routes
from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.extensions import Registry

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def setting_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += setting_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_setting_is_documented():
    missing = [k for k in setting_keys(Settings) if f"`{k}`" not in README]
    assert missing == []


def test_every_route_is_documented(tmp_path):
    aw = Agentwatch(Settings(data_dir=tmp_path))
    try:
        app = create_app(aw)
        paths = {path for path, _route in iter_api_routes(app.routes)}
    finally:
        aw.engine.dispose()

    def documented(path: str) -> bool:  # as declared, or without a parameter's converter ({id:path} -> {id})
        forms = {path, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)}
        return any(re.search(re.escape(f) + r"(?![A-Za-z0-9_/{-])", README) for f in forms)

    missing = sorted(p for p in paths if not documented(p))
    assert missing == []


def test_every_extension_point_is_documented():
    missing = [p.name for p in Registry().points() if f"`{p.name}`" not in README]
    assert missing == []
