"""Who may do what: reads need ``rules:read``, runs, snapshots and tabletop writes ``purple:run``
(granted to analysts, not to viewers); nothing answers without credentials."""

from __future__ import annotations

from pathlib import Path

from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.purple.helpers import BASE, finished, purple_settings
from tests.soc.helpers import PASSWORD
from tests.support.server import run_server


def test_reads_need_rules_read_and_writes_need_purple_run(database_url: str, tmp_path: Path) -> None:
    assert "purple:run" in BUILTIN_ROLES["analyst"][1] and "purple:run" not in BUILTIN_ROLES["viewer"][1]
    cfg = purple_settings(tmp_path, database_url, enabled=True, open_ingest_on_loopback=False)
    with run_server(cfg) as s, s.client() as c:
        for email, role in (("viewer@example.com", "viewer"), ("analyst@example.com", "analyst")):
            s.aw.auth.users.create(email, PASSWORD, role)
        headers = {}
        for email in ("viewer@example.com", "analyst@example.com"):
            token = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
            headers[email.split("@")[0]] = {"Authorization": f"Bearer {token['access_token']}"}
        viewer, analyst = headers["viewer"], headers["analyst"]
        assert c.get(f"{BASE}/atomic-tests").status_code == 401
        assert c.post(f"{BASE}/executions", json={"test_id": "AW-AT-001"}).status_code == 401
        for path in ("atomic-tests", "coverage", "drift/snapshots", "tabletop", "executions"):
            assert c.get(f"{BASE}/{path}", headers=viewer).status_code == 200, path
        writes = [
            ("post", "executions", {"test_id": "AW-AT-001"}),
            ("post", "drift/snapshot", {}),
            ("post", "tabletop", {"title": "t", "scenario": "s"}),
        ]
        for method, path, body in writes:
            r = c.request(method, f"{BASE}/{path}", json=body, headers=viewer)
            assert r.status_code == 403, (path, r.text)
        run = c.post(f"{BASE}/executions", json={"test_id": "AW-AT-001"}, headers=analyst)
        assert run.status_code == 202, run.text
        assert run.json()["requested_by"].startswith("user:")
        c.headers.update(analyst)
        assert finished(c, run.json()["id"])["status"] == "passed"
        assert c.delete(f"{BASE}/executions/{run.json()['id']}", headers=viewer).status_code == 403
        assert c.post(f"{BASE}/drift/snapshot").status_code == 201
        sid = c.post(f"{BASE}/tabletop", json={"title": "t", "scenario": "s"}).json()["id"]
        step = {"actor": "red", "action": "a"}
        assert c.post(f"{BASE}/tabletop/{sid}/steps", json=step, headers=viewer).status_code == 403
        assert c.post(f"{BASE}/tabletop/{sid}/steps", json=step).status_code == 201
