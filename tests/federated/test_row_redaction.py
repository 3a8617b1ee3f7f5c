"""Secrets in the rows targets answer are masked before the caller sees them: rows from fake
Splunk, Sentinel and Elasticsearch servers and from the local store (SQLite and PostgreSQL),
with the masking of the logs and the LLM prompts, in bounded work per row; and in the error
message a target answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.events.model import Event
from agentwatch.federated.redact import CUT, MAX_CELL_CHARS, MAX_CELLS, MAX_DEPTH, redact_row
from agentwatch.masking import MASK
from agentwatch.store import events as event_store
from tests.federated.fakes import JWT, LEAKS, Fake
from tests.federated.support import T0, federated_server
from tests.soc.helpers import AuthServer
from tests.support.server import RunningServer

TR = {"from": "2026-01-01T03:00:00Z", "to": "2026-01-01T04:00:00Z"}
LOCAL_SECRET = "leaked-local-pw-42"
SECRETS = [JWT, "leaked-query-token-77", "leaked-password-88", "AKIAIOSFODNN7EXAMPLE", "plain-column-secret"]


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    pair: tuple[AuthServer, Fake]
    with federated_server(module_database_url, tmp_path_factory.mktemp("data")) as pair:
        s = pair[0].server
        ts = T0 + 3 * 3600 + 60
        leaky = Event(
            body={"host": {"hostname": f"leak-host password={LOCAL_SECRET}"}, "process": {"name": f"sh -c 'x {JWT}'"}},
            event_id="leak-1",
            event_type="process.exec",
            ts=ts,
            received_at=ts,
        )
        event_store.commit_batch(s.aw.engine, [leaky])
        yield s


def test_rows_from_every_target_are_masked(srv: RunningServer) -> None:
    body = {"query": 'host contains "leak"', "targets": ["splunk", "sentinel", "elastic", "local"], "time_range": TR}
    with srv.client() as c:
        r = c.post("/api/v1/federated/query", json=body)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [t["status"] for t in doc["targets"]] == ["ok"] * 4, doc["targets"]
    assert [secret for secret in [*SECRETS, LOCAL_SECRET, "past-the-cut-99"] if secret in r.text] == []
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in doc["rows"]:
        rows.setdefault(row["target"], []).append(row["row"])
    assert rows["splunk"][0] == {
        "host": "spl-0",
        "_raw": "GET /v1/models HTTP/1.1 Authorization: ***",
        "tag": ["ok", "mysql -u root password=*** -h db"],
        "count": "3",
    }
    assert rows["splunk"][1] == {"host": "spl-1", "_raw": "x" * MAX_CELL_CHARS + CUT, "db_password": MASK}
    assert rows["sentinel"] == [{"Computer": "GET /cb?access_token=*** HTTP/1.1", "severity": 5}]
    assert rows["elastic"] == [{"host.name": "export AWS_KEY=***", "event.severity": 7}]
    (local,) = rows["local"]
    assert local["event_id"] == "leak-1" and local["severity"] == 0
    assert local["host"] == "leak-host password=***"
    assert local["process"] == "sh -c 'x ***'"


def test_a_rows_work_is_bounded() -> None:
    many = {f"c{i}": "password=abc" for i in range(MAX_CELLS + 5)}
    out = redact_row(many)
    assert list(out.values())[:MAX_CELLS] == ["password=***"] * MAX_CELLS
    assert list(out.values())[MAX_CELLS:] == [MASK] * 5  # past the bound: not scanned, not shown
    deep: Any = "token=abc"
    for _ in range(MAX_DEPTH + 2):
        deep = [deep]
    flat = redact_row({"d": deep})["d"]
    while isinstance(flat, list):
        flat = flat[0]
    assert flat == MASK
    assert redact_row({"n": 5, "f": 1.5, "b": True, "z": None, "api_key": 7}) == {
        "n": 5,
        "f": 1.5,
        "b": True,
        "z": None,
        "api_key": 7,
    }
    assert redact_row({"s": LEAKS["query"]}) == {"s": "GET /cb?access_token=*** HTTP/1.1"}


def test_a_targets_error_message_is_masked(srv: RunningServer) -> None:
    body = {"query": 'host = "failing"', "targets": ["elastic"], "time_range": TR}
    with srv.client() as c:
        r = c.post("/api/v1/federated/query", json=body)
    assert r.status_code == 200, r.text
    (status,) = r.json()["targets"]
    assert status["status"] == "error"
    assert status["reason"] == "answered 400: line 1: unknown column [mysql -u root password=*** -h db]"
