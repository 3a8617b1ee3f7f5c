"""Every honeytoken route but the tracking one needs a credential and its permission: reads
``alerts:read``, creating and revoking ``honeytokens:write`` (analysts have it, viewers not)."""

from __future__ import annotations

import uuid
from pathlib import Path

from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.detect.helpers import wait_for
from tests.honeytokens.conftest import TOKENS
from tests.soc.helpers import auth_server

SOME = str(uuid.uuid4())
READS = [TOKENS, f"{TOKENS}/events", f"{TOKENS}/stats", f"{TOKENS}/{SOME}", f"{TOKENS}/{SOME}/events"]


def test_each_route_needs_its_permission_and_tracking_none(tmp_path: Path, database_url: str) -> None:
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        _, reader = a.key("alerts:read")
        _, writer = a.key("honeytokens:write")
        body = {"name": "perm", "kind": "url"}
        for path in READS:
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers=writer).status_code == 403, path
            assert c.get(path, headers=reader).status_code in (200, 404), path
        assert c.post(TOKENS, json=body).status_code == 401
        assert c.post(TOKENS, json=body, headers=reader).status_code == 403
        made = c.post(TOKENS, json=body, headers=writer)
        assert made.status_code == 201, made.text
        token = made.json()
        assert token["created_by"].startswith("api_key:")
        assert c.get(f"{TOKENS}/{token['id']}", headers=reader).json()["name"] == "perm"
        # the canary URL is public: no credential, and it is recorded
        track = "/api/v1/honeytokens/track/" + token["value"].rsplit("/", 1)[1]
        assert c.get(track).status_code == 204
        wait_for(lambda: c.get(f"{TOKENS}/{token['id']}/events", headers=reader).json()["total"] == 1)
        assert c.delete(f"{TOKENS}/{token['id']}").status_code == 401
        assert c.delete(f"{TOKENS}/{token['id']}", headers=reader).status_code == 403
        assert c.delete(f"{TOKENS}/{token['id']}", headers=writer).status_code == 204
    assert "honeytokens:write" in BUILTIN_ROLES["analyst"][1]
    assert "honeytokens:write" not in BUILTIN_ROLES["viewer"][1]
