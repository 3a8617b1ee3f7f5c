"""Who may read and who may upload, with authentication on, on SQLite and PostgreSQL: reads
need rules:read and alerts:read, uploads compliance:write (granted to analysts, not viewers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.config import Settings
from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.compliance.helpers import BASE, EVIDENCE, link, statuses
from tests.detect.helpers import with_detection
from tests.support.server import RunningServer, run_server

PASSWORD = "correct horse battery staple"
READS = [
    f"{BASE}/frameworks",
    f"{BASE}/controls",
    EVIDENCE,
    f"{EVIDENCE}/00000000-0000-4000-8000-000000000000",
    f"{BASE}/dashboard/nist-ai-rmf",
]


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    auth = {"enabled": True, "open_ingest_on_loopback": False}
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth=auth)
    with run_server(with_detection(base)) as s:
        for role in ("admin", "analyst", "viewer"):
            s.aw.auth.users.create(f"{role}@example.com", PASSWORD, role)
        yield s


def login(c: Any, role: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"email": f"{role}@example.com", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def key(c: Any, admin: dict[str, str], *scopes: str) -> dict[str, str]:
    made = c.post("/api/v1/api-keys", headers=admin, json={"name": "k", "scopes": list(scopes)})
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


def test_the_analyst_role_holds_compliance_write_and_the_viewer_does_not() -> None:
    assert "compliance:write" in BUILTIN_ROLES["analyst"][1]
    assert "compliance:write" not in BUILTIN_ROLES["viewer"][1]


def test_no_credential_is_401(srv: RunningServer) -> None:
    with srv.client() as c:
        for path in READS:
            assert c.get(path).status_code == 401, path
        assert c.post(EVIDENCE, json=link("MAP")).status_code == 401


def test_reads_need_rules_read_and_alerts_read(srv: RunningServer) -> None:
    with srv.client() as c:
        admin = login(c, "admin")
        rules_only = key(c, admin, "rules:read")
        alerts_only = key(c, admin, "alerts:read")
        both = key(c, admin, "rules:read", "alerts:read")
        for path in READS:
            r = c.get(path, headers=rules_only)
            assert r.status_code == 403 and "alerts:read" in r.json()["error"]["message"], path
            r = c.get(path, headers=alerts_only)
            assert r.status_code == 403 and "rules:read" in r.json()["error"]["message"], path
            assert c.get(path, headers=both).status_code in (200, 404), path
        r = c.post(EVIDENCE, headers=both, json=link("MAP"))
        assert r.status_code == 403 and "compliance:write" in r.json()["error"]["message"]


def test_an_analyst_uploads_and_a_viewer_only_reads(srv: RunningServer) -> None:
    with srv.client() as c:
        analyst, viewer = login(c, "analyst"), login(c, "viewer")
        me = c.get("/api/v1/users/me", headers=analyst).json()
        r = c.post(EVIDENCE, headers=analyst, json=link("MAP", title="AI system inventory"))
        assert r.status_code == 201, r.text
        assert r.json()["uploaded_by"] == f"user:{me['id']}"
        r = c.post(EVIDENCE, headers=viewer, json=link("MAP"))
        assert r.status_code == 403 and "compliance:write" in r.json()["error"]["message"]
        assert c.get(EVIDENCE, headers=viewer, params={"control_id": "MAP"}).json()["total"] == 1
        # with authentication and request auditing on, GOVERN is covered; MAP has the upload;
        # MANAGE still needs an alert output
        assert statuses(c, "nist-ai-rmf", headers=viewer) == {
            "GOVERN": "covered",
            "MAP": "evidence",
            "MEASURE": "covered",
            "MANAGE": "gap",
        }
