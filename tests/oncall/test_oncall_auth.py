"""The on-call routes ask for their permissions: reads ``alerts:read``, changing rotations
``oncall:write``, which analysts hold and viewers do not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.soc.helpers import AuthServer, auth_server

ROT = "/api/v1/oncall/rotations"
BODY = {"name": "primary", "members": ["alice"], "shift_hours": 24, "start": "2026-01-05T09:00:00Z"}


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as a:
        yield a


def test_oncall_write_is_granted_to_analysts_only() -> None:
    assert "oncall:write" in BUILTIN_ROLES["analyst"][1]
    assert "oncall:write" not in BUILTIN_ROLES["viewer"][1]


def test_reads_need_alerts_read_and_changes_need_oncall_write(authed: AuthServer) -> None:
    c = authed.client
    assert c.get(ROT).status_code == 401
    assert c.get("/api/v1/oncall/whoison").status_code == 401
    assert c.post(ROT, json=BODY).status_code == 401
    _, reader = authed.key("alerts:read")
    assert c.post(ROT, json=BODY, headers=reader).status_code == 403
    _, writer = authed.key("oncall:write")
    made = c.post(ROT, json=BODY, headers=writer)
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    assert c.get(ROT, headers=writer).status_code == 403  # writing is not reading
    assert c.get(f"{ROT}/{rid}", headers=reader).json()["members"] == ["alice"]
    who = c.get("/api/v1/oncall/whoison", params={"at": "2026-01-06T10:00:00Z"}, headers=reader).json()
    assert who["whoison"][0]["on_call"]["member"] == "alice"
    assert c.put(f"{ROT}/{rid}", json=BODY, headers=reader).status_code == 403
    assert c.delete(f"{ROT}/{rid}", headers=reader).status_code == 403
    assert c.put(f"{ROT}/{rid}", json={**BODY, "members": ["bob"]}, headers=writer).status_code == 200
    assert c.delete(f"{ROT}/{rid}", headers=writer).status_code == 204
