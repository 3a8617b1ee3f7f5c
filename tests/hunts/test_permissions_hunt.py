"""``POST /api/v1/hunts/{id}/run`` needs only ``rules:write``; what a run found (event ids,
entities, indicator counts) is guarded by ``events:read`` + ``alerts:read`` on the read routes,
so a key that may only run hunts gets the run's counts, not the events."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.hunts.helpers import HUNTS, definition, write
from tests.soc.helpers import auth_server

SUMMARY = {"id", "hunt_id", "definition_hash", "trigger", "status", "started_at", "finished_at", "duration_ms"}
COUNTS = {"query_total", "scanned", "matched", "alert_id", "error"}


def test_a_key_that_may_only_run_hunts_sees_counts_not_events(tmp_path: Path, database_url: str) -> None:
    host = f"perm-{uuid.uuid4().hex[:8]}"
    (tmp_path / "hunts").mkdir()
    write(tmp_path / "hunts", "p.yml", definition("p", body=f"query: {{entity: {host}}}\n"))
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        _, runner = a.key("rules:write")
        _, both = a.key("rules:write", "events:read", "alerts:read")
        _, ingest = a.key("events:write")
        event = {"event_id": f"e-{host}", "event_type": "agent.tool_call", "host": {"hostname": host}}
        assert c.post("/api/v1/ingest", headers=ingest, json=[event]).json()["rejected"] == 0
        narrow = c.post(f"{HUNTS}/p/run", headers=runner)
        assert narrow.status_code == 200, narrow.text
        assert set(narrow.json()["run"]) == SUMMARY | COUNTS
        assert narrow.json()["run"]["matched"] == 1
        wide = c.post(f"{HUNTS}/p/run", headers=both).json()["run"]
        assert wide["matched"] == 1 and wide["event_ids"] == [f"e-{host}"]
        assert host in {e["value"] for e in wide["entities"]}
