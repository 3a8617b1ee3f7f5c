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


def test_openapi_documents_the_request_bodies():
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title="t", version="0", routes=[*auth.router.routes, *audit.router.routes])
    login = doc["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(login["required"]) == {"email", "password"} and login["additionalProperties"] is False
    assert "requestBody" in doc["paths"]["/api/v1/api-keys"]["post"]


def test_a_short_jwt_secret_is_refused(tmp_path, sqlite_url):
    import pytest

    from agentwatch.app import Agentwatch
    from tests.auth.conftest import auth_settings

    with pytest.raises(ValueError, match="auth.jwt_secret: must be at least 32 bytes"):
        Agentwatch(auth_settings(tmp_path, sqlite_url, jwt_secret="too-short"))
