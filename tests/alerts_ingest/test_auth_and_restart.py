"""The alert intake routes with authentication on (who may call which), and idempotency keys
kept across a restart; each on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson

from agentwatch.config import Settings
from tests.alerts_ingest.helpers import process_launch, tag
from tests.soc.helpers import auth_server
from tests.support.server import run_server

SUBMIT = "/api/v1/alerts/submit"


def test_who_may_call_the_intake_routes(database_url: str, tmp_path: Path) -> None:
    body = {"events": [process_launch(f"h-{tag()}")]}
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        calls = [(SUBMIT, body), ("/api/v1/alerts", {"title": "t"}), ("/api/v1/ingest/ocsf", body["events"][0])]
        for path, doc in calls:
            assert c.post(path, json=doc).status_code == 401, path
        _, reader = a.key("alerts:read", "events:read")
        assert c.post(SUBMIT, json=body, headers=reader).status_code == 403
        assert c.post("/api/v1/alerts", json={"title": "t"}, headers=reader).status_code == 403
        assert c.post("/api/v1/ingest/ocsf", json=body["events"][0], headers=reader).status_code == 403
        _, triager = a.key("alerts:write")
        refused = c.post(SUBMIT, json=body, headers=triager)
        assert refused.status_code == 403
        assert "'events:write' required" in refused.json()["error"]["message"]
        assert c.post("/api/v1/alerts", json={"title": f"t-{tag()}"}, headers=triager).status_code == 201
        _, sender = a.key("alerts:write", "events:write")
        assert c.post(SUBMIT, json=body, headers=sender).status_code == 201
        _, ingest = a.key("events:write")
        assert c.post("/api/v1/ingest/ocsf", json=body["events"][0], headers=ingest).status_code == 200


def test_an_idempotency_key_outlives_a_restart(database_url: str, tmp_path: Path) -> None:
    cfg = Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})
    raw = orjson.dumps({"title": "Kept", "events": [process_launch(f"h-{tag()}")]})
    headers = {"Idempotency-Key": "k-1", "content-type": "application/json"}
    with run_server(cfg) as s, s.client() as c:
        first = c.post(SUBMIT, content=raw, headers=headers)
        assert first.status_code == 201, first.text
    with run_server(cfg) as s, s.client() as c:
        retry = c.post(SUBMIT, content=raw, headers=headers)
        assert (retry.status_code, retry.json()) == (201, first.json())
        assert retry.headers["idempotent-replayed"] == "true"
        assert c.get("/api/v1/alerts", params={"rule_id": "aisoc.submit"}).json()["meta"]["total"] == 1
        assert c.post(SUBMIT, content=raw.replace(b"Kept", b"Other"), headers=headers).status_code == 409
