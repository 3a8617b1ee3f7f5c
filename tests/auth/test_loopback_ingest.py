"""The default policy for agent SDKs: on a loopback bind the ingest endpoints take events
without a credential; everything else still needs one, and a setting closes ingest too."""

from __future__ import annotations

import json
from pathlib import Path

from agentwatch.config import Settings
from tests.conftest import OISP_EXAMPLES
from tests.support.server import run_server

OISP_EVENT = json.loads((OISP_EXAMPLES / "process-exec.json").read_text())
AOP_EVENT = {
    "spec": "aop/1.0",
    "session_id": "s-loopback",
    "agent_id": "a-1",
    "sequence": 1,
    "timestamp": "2026-04-03T10:00:00Z",
    "type": "session.started",
    "payload": {"goal": "check the policy"},
}


def settings(tmp_path: Path, **auth) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'agentwatch.db'}",
        auth={"enabled": True, **auth},
        detection={"atr_bundled": False, "pack": False},
    )


def test_ingest_is_open_on_loopback_by_default_and_nothing_else_is(tmp_path: Path):
    with run_server(settings(tmp_path)) as srv, srv.client() as c:
        assert srv.aw.settings.auth.open_ingest_on_loopback is True  # the documented default
        r = c.post("/api/v1/ingest", json=OISP_EVENT)
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        r = c.post("/events", json=AOP_EVENT)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        # reading what was sent, and every other mutation, still needs a credential
        for method, path in (("GET", "/api/events"), ("GET", "/sessions"), ("GET", "/sessions/s-loopback")):
            assert c.request(method, path).status_code == 401, path
        assert c.post("/api/v1/api-keys", json={"name": "k", "scopes": ["events:read"]}).status_code == 401
        # the anonymous ingest is audited as such
        rows = srv.aw.audit.query(action="POST /api/v1/ingest", limit=10)
        assert [(r["actor"]["kind"], r["status"]) for r in rows] == [("anonymous", 200)]


def test_the_setting_closes_ingest_on_loopback(tmp_path: Path):
    with run_server(settings(tmp_path, open_ingest_on_loopback=False)) as srv, srv.client() as c:
        assert c.post("/api/v1/ingest", json=OISP_EVENT).status_code == 401
        assert c.post("/events", json=AOP_EVENT).status_code == 401
        assert c.post("/v1/traces", json={"resourceSpans": []}).status_code == 401
