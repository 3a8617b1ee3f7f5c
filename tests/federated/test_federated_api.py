"""``/api/v1/federated`` on a real server (SQLite and PostgreSQL) fanning out to fake Splunk,
Sentinel and Elasticsearch servers on loopback and to the server's own event store; the routes
need ``events:read`` and a query is audited with its targets, never its text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.federated.fanout import translate
from agentwatch.federated.language import parse
from agentwatch.federated.spec import window
from tests.federated.fakes import ELASTIC_KEY, SENTINEL_TOKEN, SPLUNK_TOKEN, Fake
from tests.federated.support import federated_server
from tests.soc.helpers import AuthServer
from tests.support.server import RunningServer

QUERY = "/api/v1/federated/query"
TRANSLATE = "/api/v1/federated/translate"
TR = {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00Z"}


@pytest.fixture(scope="module")
def both(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, Fake]]:
    with federated_server(module_database_url, tmp_path_factory.mktemp("data")) as pair:
        yield pair


@pytest.fixture(scope="module")
def srv(both: tuple[AuthServer, Fake]) -> RunningServer:
    return both[0].server


@pytest.fixture(scope="module")
def env(both: tuple[AuthServer, Fake]) -> Fake:
    return both[1]


@pytest.fixture(scope="module")
def authed(both: tuple[AuthServer, Fake]) -> AuthServer:
    return both[0]


def post(s: RunningServer, path: str, **body: Any) -> Any:
    with s.client() as c:
        return c.post(path, json=body)


def ok(s: RunningServer, **body: Any) -> dict[str, Any]:
    r = post(s, QUERY, time_range=TR, **body)
    assert r.status_code == 200, r.text
    return r.json()


def test_fans_out_to_every_siem_with_its_credential_and_exact_native_query(srv: RunningServer, env: Fake) -> None:
    query = 'host startswith "build" AND severity >= 2'
    doc = ok(srv, query=query, targets=["splunk", "sentinel", "elastic", "local"])
    assert [t["status"] for t in doc["targets"]] == ["ok"] * 4
    assert env.got["splunk"][-1] == (
        'search index="agents" earliest=1767225600 latest=1767229201'  # the end (01:00:00Z) included
        " | where (match('host', \"(?i)^build\")) AND ('severity'>=2) | head 1001"
    )
    assert env.got["sentinel"][-1] == (
        "AgentEvents | where ['TimeGenerated'] between"
        " (datetime(2026-01-01T00:00:00.000000Z) .. datetime(2026-01-01T01:00:00.000000Z))"
        " | where (['Computer'] startswith \"build\") and (['severity'] >= long(2)) | take 1001"
    )
    assert env.got["elastic"][-1] == (
        'FROM logs-agents | WHERE `@timestamp` >= TO_DATETIME("2026-01-01T00:00:00.000Z")'
        ' AND `@timestamp` <= TO_DATETIME("2026-01-01T01:00:00.000Z")'
        ' | WHERE (STARTS_WITH(TO_LOWER(`host.name`), "build")) AND (`event.severity` >= 2) | LIMIT 1001'
    )
    assert env.auth["splunk"][-1] == f"Bearer {SPLUNK_TOKEN}"
    assert env.auth["sentinel"][-1] == f"Bearer {SENTINEL_TOKEN}"
    assert env.auth["elastic"][-1] == f"ApiKey {ELASTIC_KEY}"
    for t in doc["targets"][:3]:
        assert t["native_query"] == env.got[t["kind"]][-1]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for row in doc["rows"]:
        by_target.setdefault(row["target"], []).append(row["row"])
    assert by_target["splunk"] == [{"host": "spl-0", "_raw": "x"}, {"host": "spl-1", "_raw": "x"}]
    assert by_target["sentinel"] == [{"Computer": "kql-0", "severity": 0}, {"Computer": "kql-1", "severity": 1}]
    assert by_target["elastic"] == [
        {"host.name": "es-0", "event.severity": 0},
        {"host.name": "es-1", "event.severity": 1},
    ]
    local = by_target["local"]  # newest first; build-03 is outside the range, weird host does not start with build
    assert [r["event_id"] for r in local] == ["fed-2", "fed-1"]
    assert local[1] == {
        "event_id": "fed-1",
        "event_type": "process.exec",
        "source": "oisp",
        "severity": 8,
        "session_id": None,
        "agent": "coder",
        "host": "build-01",
        "process": "python3",
        "pid": 101,
        "trace_id": None,
        "ts": local[1]["ts"],
    }
    assert local[1]["ts"].startswith("2026-01-01T00:01:00")
    assert doc["time_range"] == {"from": "2026-01-01T00:00:00.000000Z", "to": "2026-01-01T01:00:00.000000Z"}


def test_local_target_runs_the_whole_language_on_the_store(srv: RunningServer) -> None:
    def ids(query: str) -> list[str]:
        doc = ok(srv, query=query, targets=["local"])
        assert doc["targets"][0]["status"] == "ok", doc
        return sorted(r["row"]["event_id"] for r in doc["rows"])

    assert ids('host = "we\\"ird\\nhost"') == ["fed-3"]
    assert ids('host contains "UILD"') == ["fed-1", "fed-2"]
    assert ids('host contains "%"') == []  # a LIKE wildcard in a value is a plain character
    assert ids("severity > 8 OR pid in (102)") == ["fed-2", "fed-3"]
    assert ids('NOT host startswith "build" AND agent = "coder"') == ["fed-3"]
    assert ids('process != "python3"') == []
    assert ids("severity <= 2 AND severity < 3 AND severity >= 2") == ["fed-2"]


def test_one_failing_target_never_fails_the_others(
    srv: RunningServer, env: Fake, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    names = ["splunk-wrong", "sentinel-unset", "elastic-huge", "dead", "elastic-slow", "elastic-cap", "elastic"]
    doc = ok(srv, query='host = "a"', targets=names)
    st = {t["target"]: t for t in doc["targets"]}
    assert st["splunk-wrong"]["status"] == "error"
    assert st["splunk-wrong"]["reason"] == "answered 401: call not properly authenticated"
    assert st["sentinel-unset"] == {
        **st["sentinel-unset"],
        "status": "error",
        "reason": "credential: environment variable AW_TEST_FED_NEVER_SET is not set",
    }
    assert st["elastic-huge"]["reason"] == "answer larger than max_response_bytes (1024 bytes)"
    assert st["dead"]["status"] == "error" and st["dead"]["reason"].startswith("cannot connect")
    assert st["elastic-slow"]["status"] == "timeout"
    assert st["elastic-slow"]["reason"] == "no answer within timeout_s (0.5 s)"
    assert st["elastic-slow"]["elapsed_ms"] < env.slow_s * 1000
    assert st["elastic-cap"]["status"] == "truncated" and st["elastic-cap"]["rows"] == 1
    assert st["elastic-cap"]["native_query"].endswith("| LIMIT 2")
    assert st["elastic"]["status"] == "ok" and st["elastic"]["rows"] == 2
    assert [r["target"] for r in doc["rows"]] == ["elastic-cap", "elastic", "elastic"]
    assert "not-the-token" not in str(doc)
    out, err = capfd.readouterr()
    for secret in ("not-the-token", ELASTIC_KEY, SPLUNK_TOKEN):  # sent in headers, never logged
        assert secret not in caplog.text and secret not in out and secret not in err


def test_translate_shows_native_text_and_runs_nothing(srv: RunningServer, env: Fake) -> None:
    before = {k: len(v) for k, v in env.got.items()}
    r = post(
        srv,
        TRANSLATE,
        query='agent = "x\\" | delete"',
        targets=["splunk", "sentinel", "elastic", "local"],
        time_range=TR,
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {k: len(v) for k, v in env.got.items()} == before
    texts = {t["target"]: t["native_query"] for t in doc["targets"]}
    assert texts["splunk"].endswith('| where \'agent\'=="x\\" | delete" | head 1001')
    assert '[\'agent\'] == "x\\" | delete"' in texts["sentinel"]
    assert '`agent.name` == "x\\" | delete"' in texts["elastic"]
    assert texts["local"].startswith("SELECT ")
    settings = srv.aw.settings.federated
    (splunk,) = [t for t in settings.targets if t.name == "splunk"]
    w = window(None, settings, now=86400.0)
    assert translate(splunk, parse('agent = "a"'), w, srv.aw.engine).startswith('search index="agents" earliest=0 ')


def test_targets_lists_configuration_without_secrets(srv: RunningServer) -> None:
    with srv.client() as c:
        r = c.get("/api/v1/federated/targets")
    assert r.status_code == 200
    doc = r.json()["targets"]
    by = {t["name"]: t for t in doc}
    assert by["splunk"]["credential"] == {"env": "AW_TEST_FED_SPLUNK", "set": True}
    assert by["sentinel-unset"]["credential"] == {"env": "AW_TEST_FED_NEVER_SET", "set": False}
    assert by["local"]["credential"] is None and by["local"]["kind"] == "agentwatch_local"
    assert by["sentinel"]["field_map"]["host"] == "Computer" and by["sentinel"]["field_map"]["ts"] == "TimeGenerated"
    assert by["elastic"]["field_map"]["host"] == "host.name"
    for secret in (SPLUNK_TOKEN, SENTINEL_TOKEN, ELASTIC_KEY):
        assert secret not in r.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": '(host = "a"'}, "query: unbalanced parentheses: a ')' is missing (at character 12)"),
        ({"query": 'hostname = "a"'}, "query: unknown field 'hostname'"),
        ({"query": 'host like "a"'}, "query: unknown operator 'like'"),
        ({"query": "(" * 13 + "pid = 1" + ")" * 13}, "query: nested deeper than 12 levels"),
        ({"query": "pid = 1" + " " * 4096}, "query: String should have at most 4096 characters"),
        ({"query": ""}, "query: String should have at least 1 character"),
        ({"query": 'host = "a"', "targets": ["nope"]}, "targets.0: unknown target 'nope'"),
        ({"query": 'host = "a"', "targets": ["BAD NAME"]}, "targets.0: must be a target name"),
        ({"query": 'host = "a"', "targets": ["local", "local"]}, "targets.1: 'local' is named twice"),
        ({"query": 'host = "a"', "targets": []}, "targets: List should have at least 1 item"),
        ({"query": 'host = "a"', "time_range": {"last": "1y"}}, "time_range: Value error, last must be a duration"),
        (
            {"query": 'host = "a"', "time_range": {"from": "yesterday"}},
            "time_range.from: must be an RFC 3339 timestamp",
        ),
        (
            {"query": 'host = "a"', "time_range": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}},
            "time_range: from must not be after to",
        ),
        ({"query": 'host = "a"', "time_range": {"last": "200d"}}, "time_range: wider than federated.max_window_s"),
        ({"query": 'host = "a"', "sql": "x"}, "sql: Extra inputs are not permitted"),
        (
            {"query": 'host = "a"', "time_range": {"from": "1969-12-31T23:59:59Z", "to": "1970-01-02T00:00:00Z"}},
            "time_range.from: before 1970-01-01T00:00:00Z, which the Splunk target 'splunk' cannot search",
        ),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_rule(srv: RunningServer, body: dict[str, Any], message: str) -> None:
    for path in (QUERY, TRANSLATE):
        r = post(srv, path, **body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(message), r.json()["error"]["message"]


def test_times_before_1970_are_refused_for_splunk_only(srv: RunningServer) -> None:
    tr = {"from": "1969-12-31T23:00:00Z", "to": "1970-01-01T01:00:00Z"}
    r = post(srv, QUERY, query='host = "a"', targets=["local", "splunk-wrong"], time_range=tr)
    assert r.status_code == 400, r.text
    rule = "before 1970-01-01T00:00:00Z, which the Splunk target 'splunk-wrong' cannot search (epoch seconds)"
    assert r.json()["error"]["details"] == [{"field": "time_range.from", "rule": rule}]
    r = post(srv, QUERY, query='host = "a"', targets=["local", "sentinel", "elastic"], time_range=tr)
    assert r.status_code == 200, r.text
    doc = r.json()
    texts = {t["target"]: t["native_query"] for t in doc["targets"]}
    assert "datetime(1969-12-31T23:00:00.000000Z) .. datetime(1970-01-01T01:00:00.000000Z)" in texts["sentinel"]
    assert 'TO_DATETIME("1969-12-31T23:00:00.000Z")' in texts["elastic"]
    assert "events.ts >= -3600.0" in texts["local"]
    from_1970 = {"from": "1970-01-01T00:00:00Z", "to": "1970-01-01T01:00:00Z"}
    r = post(srv, TRANSLATE, query='host = "a"', targets=["splunk"], time_range=from_1970)
    assert r.status_code == 200, r.text
    assert r.json()["targets"][0]["native_query"].startswith('search index="agents" earliest=0 latest=3601 ')


BODY = {"query": 'host = "secret-host-name"', "targets": ["local"], "time_range": {"last": "1h"}}


def test_routes_need_events_read(authed: AuthServer) -> None:
    c = authed.client
    assert c.post(QUERY, json=BODY).status_code == 401
    assert c.post("/api/v1/federated/translate", json=BODY).status_code == 401
    assert c.get("/api/v1/federated/targets").status_code == 401
    _, other = authed.key("alerts:read")
    assert c.post(QUERY, json=BODY, headers=other).status_code == 403
    assert c.post("/api/v1/federated/translate", json=BODY, headers=other).status_code == 403
    assert c.get("/api/v1/federated/targets", headers=other).status_code == 403
    _, reader = authed.key("events:read")
    r = c.post(QUERY, json=BODY, headers=reader)
    assert r.status_code == 200, r.text
    assert r.json()["targets"][0]["status"] == "ok"
    assert c.post("/api/v1/federated/translate", json=BODY, headers=reader).status_code == 200
    assert "local" in [t["name"] for t in c.get("/api/v1/federated/targets", headers=reader).json()["targets"]]


def test_a_query_is_audited_with_its_targets_not_its_text(authed: AuthServer) -> None:
    c = authed.client
    key_id, reader = authed.key("events:read")
    assert c.post(QUERY, json=BODY, headers=reader).status_code == 200
    r = c.get("/api/v1/audit", params={"action": "POST /api/v1/federated/query"}, headers=authed.admin)
    assert r.status_code == 200, r.text
    entries = [e for e in r.json()["entries"] if key_id in str(e)]
    assert entries, r.json()
    assert entries[0]["details"] == {"targets": ["local"]}
    assert entries[0]["status"] == 200
    assert "secret-host-name" not in r.text
