"""Identifier rules are whole-string rules: a pattern anchored with ``$`` and applied with
``match`` also takes the string with a final newline (``$`` matches before it). Names with a
trailing newline were stored as new roles and permissions, route names and header names,
and rule ids were looked up instead of refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentwatch.capture.settings import CaptureSettings
from agentwatch.notify.base import get_headers
from tests.auth.conftest import user_headers


def test_role_and_permission_names_refuse_a_final_newline(sqlite_server):
    with sqlite_server.client() as c:
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        r = c.post("/api/v1/rbac/permissions", headers=admin, json={"name": "cases:triage\n"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("name:")
        r = c.post("/api/v1/rbac/roles", headers=admin, json={"name": "triage\n", "permissions": ["alerts:read"]})
        assert r.status_code == 400, r.text
        names = {role["name"] for role in c.get("/api/v1/rbac/roles", headers=admin).json()["roles"]}
        assert not any(n.endswith("\n") for n in names)


def test_rule_ids_with_a_final_newline_are_refused(sqlite_server):
    with sqlite_server.client() as c:
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        r = c.get("/api/v1/sigma/rules/abc%0A", headers=admin)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("rule_id:")
        assert c.get("/api/v1/sigma/rules/abc", headers=admin).status_code == 404


def test_route_and_header_names_with_a_final_newline_are_refused():
    route = {"base_url": "https://api.openai.com/v1", "provider": "openai"}
    with pytest.raises(ValidationError):
        CaptureSettings(routes={"openai\n": route})
    assert CaptureSettings(routes={"openai": route}).routes["openai"].provider == "openai"
    with pytest.raises(ValueError, match="headers: names"):
        get_headers({"headers": {"X-Team\n": "soc"}})
    assert get_headers({"headers": {"X-Team": "soc"}}) == {"X-Team": "soc"}
