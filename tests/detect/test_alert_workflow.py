"""Alert triage (AiSOC): PATCH status/assignee, POST .../assign, DELETE, and how repeats merge
into an alert (entities and tags added, a closed alert left closed), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from agentwatch.alerts import explanation_cache
from agentwatch.alerts.model import MAX_ENTITIES, MAX_TAGS
from agentwatch.alerts.recorder import store_findings
from agentwatch.config import Settings
from agentwatch.detect import queries
from agentwatch.detect.schema import alert_feedback
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store import kv
from agentwatch.store.alerts_schema import alerts
from tests.detect.helpers import llm_request, wait_for, with_detection
from tests.support.server import RunningServer, run_server

RULE = "AW-BUILTIN-UNAPPROVED-MODEL"  # dedups on provider and model: one alert across hosts
MISSING = "00000000-0000-0000-0000-000000000000"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(with_detection(base, approved_models=["gpt-4o*"])) as s:
        yield s


def send(c: Any, model: str, host: str, ts: str, headers: dict[str, str] | None = None) -> None:
    event = {**llm_request("hello", model=model), "host": {"hostname": host}, "ts": ts}
    r = c.post("/api/v1/ingest", json=[event], headers=headers or {})
    assert r.status_code in (200, 202), r.text


def of_model(c: Any, model: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The alerts of ``model`` (each test uses its own model, hence its own dedup key), newest first."""
    r = c.get("/api/v1/alerts", params={"rule_id": RULE, "limit": 1000}, headers=headers or {})
    assert r.status_code == 200, r.text
    return [a for a in r.json()["alerts"] if a["details"].get("model") == model]


def one_alert(c: Any, model: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    send(c, model, f"host-{model}", "2026-03-01T10:00:00Z", headers)
    return wait_for(lambda: of_model(c, model, headers))[0]


def test_patch_sets_status_and_assignee_and_null_unassigns(srv):
    with srv.client() as c:
        alert = one_alert(c, "m-patch")
        assert alert["status"] == "open" and alert["assignee"] is None
        url = f"/api/v1/alerts/{alert['id']}"
        r = c.patch(url, json={"status": "acknowledged", "assignee": "alice@example.com"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["id"], doc["status"], doc["assignee"]) == (alert["id"], "acknowledged", "alice@example.com")
        assert "events" in doc and "feedback" in doc  # the detail shape, as GET answers it
        # a field left out is left alone
        assert c.patch(url, json={"status": "closed"}).json()["assignee"] == "alice@example.com"
        got = c.get(url).json()
        assert (got["status"], got["assignee"]) == ("closed", "alice@example.com")
        assert c.patch(url, json={"assignee": None}).json()["assignee"] is None
        assert c.get(url).json()["status"] == "closed"
        listed = c.get("/api/v1/alerts", params={"status": "closed", "rule_id": RULE}).json()["alerts"]
        assert alert["id"] in [a["id"] for a in listed]


def test_assign_sets_the_assignee(srv):
    with srv.client() as c:
        alert = one_alert(c, "m-assign")
        r = c.post(f"/api/v1/alerts/{alert['id']}/assign", json={"assignee": "Bob Analyst"})
        assert r.status_code == 200, r.text
        assert r.json()["assignee"] == "Bob Analyst" and r.json()["status"] == "open"
        assert c.get(f"/api/v1/alerts/{alert['id']}").json()["assignee"] == "Bob Analyst"
        assert of_model(c, "m-assign")[0]["assignee"] == "Bob Analyst"  # in the list shape too


def test_the_list_filters_by_assignee(srv):
    with srv.client() as c:
        mine, other = one_alert(c, "m-filter-mine"), one_alert(c, "m-filter-other")
        assert c.post(f"/api/v1/alerts/{mine['id']}/assign", json={"assignee": "carol"}).status_code == 200
        assert c.post(f"/api/v1/alerts/{other['id']}/assign", json={"assignee": "dave"}).status_code == 200
        got = c.get("/api/v1/alerts", params={"assignee": "carol", "limit": 1000}).json()["alerts"]
        assert [a["id"] for a in got] == [mine["id"]]
        r = c.get("/api/v1/alerts", params={"assignee": "x" * 129})
        assert r.status_code == 400 and "assignee" in r.text


def test_triage_writes_are_audited_with_the_fields_they_changed(srv):
    with srv.client() as c:
        alert = one_alert(c, "m-audit")
        assert c.patch(f"/api/v1/alerts/{alert['id']}", json={"status": "closed", "assignee": "x"}).status_code == 200
        assert c.post(f"/api/v1/alerts/{alert['id']}/assign", json={"assignee": "y"}).status_code == 200
        assert c.delete(f"/api/v1/alerts/{alert['id']}").status_code == 204
    target = f"/api/v1/alerts/{alert['id']}"

    def entries(action: str) -> list[dict[str, Any]]:
        return [e for e in srv.aw.audit.query(action=action) if e["target"].startswith(target)]

    (patched,) = entries("PATCH /api/v1/alerts/{alert_id}")
    assert patched["status"] == 200 and patched["details"] == {"changed": ["assignee", "status"]}
    (assigned,) = entries("POST /api/v1/alerts/{alert_id}/assign")
    assert assigned["details"] == {"changed": ["assignee"]}
    (deleted,) = entries("DELETE /api/v1/alerts/{alert_id}")
    assert deleted["status"] == 204 and deleted["details"] == {"deleted": {"alerts": 1, "feedback": 0}}


@pytest.mark.parametrize(
    ("body", "field", "rule"),
    [
        ({"status": "resolved"}, "status", "'open', 'acknowledged' or 'closed'"),
        ({"status": None}, "status", "not null"),
        ({"assignee": "a" * 129}, "assignee", "at most 128 characters"),
        ({"assignee": ""}, "assignee", "at least 1 character"),
        ({"assignee": " alice"}, "assignee", "surrounding blanks"),
        ({"assignee": "al\x00ice"}, "assignee", "control characters"),
        ({"assignee": 7}, "assignee", "valid string"),
        ({"status": "open", "owner": "alice"}, "owner", "Extra inputs are not permitted"),
        ({}, "body", "give status and/or assignee"),
        ([{"status": "open"}], "body", "valid dictionary"),
        ("closed", "body", "valid dictionary"),
    ],
)
def test_bad_patch_bodies_name_the_field_and_rule(srv, body, field, rule):
    with srv.client() as c:
        alert = one_alert(c, "m-bad")
        r = c.patch(f"/api/v1/alerts/{alert['id']}", json=body)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(f"{field}:") and rule in message, message
        assert c.get(f"/api/v1/alerts/{alert['id']}").json()["status"] == "open"  # nothing changed


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "assignee"), ({"assignee": None}, "assignee"), ({"assignee": "x", "status": "closed"}, "status")],
)
def test_bad_assign_bodies_name_the_field(srv, body, field):
    with srv.client() as c:
        alert = one_alert(c, "m-bad-assign")
        r = c.post(f"/api/v1/alerts/{alert['id']}/assign", json=body)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_malformed_or_oversized_bodies_and_unknown_ids(srv):
    with srv.client() as c:
        alert = one_alert(c, "m-ids")
        url = f"/api/v1/alerts/{alert['id']}"
        r = c.patch(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("body:")
        huge = c.patch(url, json={"assignee": "a" * 10_000})
        assert huge.status_code == 413 and huge.json()["error"]["message"].startswith("body:")
        assert c.patch(f"/api/v1/alerts/{MISSING}", json={"status": "closed"}).status_code == 404
        assert c.post(f"/api/v1/alerts/{MISSING}/assign", json={"assignee": "a"}).status_code == 404
        assert c.delete(f"/api/v1/alerts/{MISSING}").status_code == 404
        bad = c.patch("/api/v1/alerts/not_an_id!", json={"status": "closed"})
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("alert_id:")
        assert c.delete("/api/v1/alerts/not_an_id!").status_code == 400
        stray = c.delete(url, params={"force": "1"})
        assert stray.status_code == 400 and stray.json()["error"]["message"].startswith("force:")
        assert c.get(url).status_code == 200


def test_delete_removes_the_alert_its_feedback_and_its_cached_explanation(srv):
    engine = srv.aw.engine
    with srv.client() as c:
        alert = one_alert(c, "m-delete")
        keep = one_alert(c, "m-delete-keep")
        for aid in (alert["id"], keep["id"]):
            assert c.post(f"/api/v1/alerts/{aid}/feedback", json={"feedback": "fp"}).status_code == 204
            kv.put(engine, explanation_cache.cache_key(aid), {"alert_id": aid, "explanation": "cached", "model": "m"})
        r = c.delete(f"/api/v1/alerts/{alert['id']}")
        assert r.status_code == 204 and r.content == b""
        assert c.get(f"/api/v1/alerts/{alert['id']}").status_code == 404
        assert c.get(f"/api/v1/alerts/{alert['id']}/feedback").status_code == 404
        assert c.delete(f"/api/v1/alerts/{alert['id']}").status_code == 404
        assert of_model(c, "m-delete") == []
        assert c.get(f"/api/v1/alerts/{keep['id']}").json()["feedback"] == {"tp": 0, "fp": 1}
    with engine.connect() as conn:
        left = [r.alert_id for r in conn.execute(select(alert_feedback.c.alert_id))]
    assert alert["id"] not in left and keep["id"] in left
    assert kv.get(engine, explanation_cache.cache_key(alert["id"])) is None
    assert kv.get(engine, explanation_cache.cache_key(keep["id"])) is not None


def test_a_repeat_after_close_opens_a_new_alert_and_an_acknowledged_one_keeps_counting(srv):
    with srv.client() as c:
        first = one_alert(c, "m-reopen")
        c.patch(f"/api/v1/alerts/{first['id']}", json={"status": "closed", "assignee": "alice"})
        send(c, "m-reopen", "host-m-reopen", "2026-03-01T10:01:00Z")  # within the dedup window
        both = wait_for(lambda: len(of_model(c, "m-reopen")) == 2 and of_model(c, "m-reopen"))
        new, old = both  # newest first
        assert (old["id"], old["status"], old["count"], old["assignee"]) == (first["id"], "closed", 1, "alice")
        assert new["id"] != first["id"] and (new["status"], new["count"], new["assignee"]) == ("open", 1, None)
        c.patch(f"/api/v1/alerts/{new['id']}", json={"status": "acknowledged"})
        send(c, "m-reopen", "host-m-reopen", "2026-03-01T10:02:00Z")
        wait_for(lambda: c.get(f"/api/v1/alerts/{new['id']}").json()["count"] == 2)
        again = c.get(f"/api/v1/alerts/{new['id']}").json()
        assert again["status"] == "acknowledged" and len(of_model(c, "m-reopen")) == 2


def test_a_repeat_adds_its_entities_to_the_alert(srv):
    with srv.client() as c:
        first = one_alert(c, "m-merge")
        send(c, "m-merge", "second-host", "2026-03-01T10:01:00Z")
        merged = (
            wait_for(lambda: c.get(f"/api/v1/alerts/{first['id']}").json()["count"] == 2)
            and c.get(f"/api/v1/alerts/{first['id']}").json()
        )
        assert {"type": "host", "value": "second-host", "id": entity_id("host", "second-host")} in merged["entities"]
        assert {"type": "host", "value": "host-m-merge", "id": entity_id("host", "host-m-merge")} in merged["entities"]
        # the entity filter finds the alert by the repeat's entity too
        found = c.get("/api/v1/alerts", params={"entity": "second-host", "rule_id": RULE}).json()["alerts"]
        assert [a["id"] for a in found] == [first["id"]]


# -- the store: merging is bounded ---------------------------------------------------------


def _finding(i: int, tags: list[str]) -> Finding:
    ent = {"type": "host", "value": f"h{i}", "id": entity_id("host", f"h{i}")}
    event = Event(body={}, event_id=f"e{i}", event_type="ai.request", ts=1000.0 + i, received_at=1000.0, entities=[ent])
    return Finding("atr", "rule-1", "Flood", 5, [event], alert_type="atr", tags=tags, dedup_key="fleet")


def test_merged_entities_and_tags_are_added_up_to_their_caps(engine):
    first = store_findings(engine, [_finding(0, ["attack.t1059", "attack.execution"])], 300)
    store_findings(engine, [_finding(1, ["attack.execution", "atlas.aml.t0051"])], 300)
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    assert orjson.loads(row.tags) == ["attack.t1059", "attack.execution", "atlas.aml.t0051"]
    assert row.entity_ids.split() == [entity_id("host", "h0"), entity_id("host", "h1")]
    q = queries.AlertQuery(technique="AML.T0051")
    assert [a["id"] for a in queries.list_alerts(engine, q)[0]] == [first[0][0]["id"]]
    # a hundred more repeats, each with a new entity and a new tag: the alert keeps the first ones
    out = store_findings(engine, [_finding(i, [f"tag.{i}"]) for i in range(2, 102)], 300)
    last, is_new = out[-1]
    assert not is_new and last["count"] == 102
    assert len(last["entities"]) == MAX_ENTITIES and len(last["tags"]) == MAX_TAGS
    assert last["entities"][-1]["value"] == f"h{MAX_ENTITIES - 1}"
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    body = orjson.loads(row.body)
    assert row.entity_ids.split() == [e["id"] for e in body["entities"]]  # searchable exactly as shown
    assert orjson.loads(row.tags) == last["tags"] and row.assignee is None


# -- permissions ------------------------------------------------------------------------------


def test_triage_needs_alerts_write(module_database_url, tmp_path_factory):
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("auth"),
        database_url=module_database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
    )
    with run_server(with_detection(cfg, approved_models=["gpt-4o*"])) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}

        def key(*scopes: str) -> dict[str, str]:
            made = c.post("/api/v1/api-keys", headers=admin, json={"name": "k", "scopes": list(scopes)}).json()
            return {"X-API-Key": made["key"]}

        alert = one_alert(c, "m-perm", admin)
        url = f"/api/v1/alerts/{alert['id']}"
        reader = key("alerts:read")
        assert c.patch(url, headers=reader, json={"status": "closed"}).status_code == 403
        assert c.post(f"{url}/assign", headers=reader, json={"assignee": "a"}).status_code == 403
        assert c.delete(url, headers=reader).status_code == 403
        assert c.patch(url, json={"status": "closed"}).status_code == 401
        writer = key("alerts:read", "alerts:write")
        assert c.patch(url, headers=writer, json={"status": "closed"}).json()["status"] == "closed"
        assert c.post(f"{url}/assign", headers=writer, json={"assignee": "a"}).json()["assignee"] == "a"
        assert c.delete(url, headers=writer).status_code == 204
