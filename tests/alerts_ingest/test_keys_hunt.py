"""Idempotency keys are the caller's own: the same key sent by two API keys neither replays
the other's answer nor conflicts with its body; on SQLite and PostgreSQL, auth on."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.alerts_ingest.helpers import process_launch, tag
from tests.soc.helpers import auth_server

SUBMIT = "/api/v1/alerts/submit"


def test_one_idempotency_key_from_two_callers_is_two_keys(database_url: str, tmp_path: Path) -> None:
    key = {"Idempotency-Key": "shared-1", "content-type": "application/json"}
    mine = orjson.dumps({"title": "Mine", "events": [process_launch(f"a-{tag()}")]})
    theirs = orjson.dumps({"title": "Theirs", "events": [process_launch(f"b-{tag()}")]})
    with auth_server(database_url, tmp_path) as a:
        c = a.client
        _, first = a.key("alerts:write", "events:write")
        _, second = a.key("alerts:write", "events:write")
        _, third = a.key("alerts:write", "events:write")
        made = c.post(SUBMIT, content=mine, headers={**first, **key})
        assert made.status_code == 201, made.text
        other = c.post(SUBMIT, content=theirs, headers={**second, **key})  # not "used with another body"
        assert other.status_code == 201, other.text
        assert other.json()["alert"]["title"] == "Theirs"
        # the first caller's body under a third caller's key: run, not answered from the first
        same = c.post(SUBMIT, content=mine, headers={**third, **key})
        assert same.status_code == 200, same.text
        assert "idempotent-replayed" not in same.headers
        assert (same.json()["alert"]["id"], same.json()["alert"]["count"]) == (made.json()["alert"]["id"], 2)
        replay = c.post(SUBMIT, content=mine, headers={**first, **key})
        assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
        assert replay.json() == made.json()
