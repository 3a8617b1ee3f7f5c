"""The playbook catalogue: create, list, read, replace, delete, and every bad input refused
with a 4xx naming the field; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.soc.playbooks.model import Invalid, parse_playbook
from agentwatch.soc.playbooks.settings import PlaybookSettings
from tests.playbooks.helpers import PLAYBOOKS, create, make_alert, server, unique
from tests.support.server import RunningServer

CLOSE = {"action": "set_alert_status", "params": {"status": "closed"}}
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server(tmp_path_factory.mktemp("data"), module_database_url) as s:
        yield s


def test_a_playbook_is_stored_read_listed_replaced_and_deleted(srv: RunningServer) -> None:
    name = f"triage-{unique()}"
    trigger = {"type": "alert", "min_severity": 7, "alert_types": ["ioc", "sigma"], "tags": ["t1"]}
    with srv.client() as c:
        made = create(c, [CLOSE, {**CLOSE, "continue_on_error": True, "name": "again"}], name=name, trigger=trigger)
        assert (made["name"], made["enabled"], made["description"]) == (name, True, "")
        assert made["trigger"] == {**trigger, "rule_ids": []}
        assert made["steps"][1] == {**CLOSE, "continue_on_error": True, "name": "again"}
        assert c.get(f"{PLAYBOOKS}/{made['id']}").json() == made
        listed = c.get(PLAYBOOKS, params={"limit": 1000}).json()
        assert made["id"] in [p["id"] for p in listed["playbooks"]]
        r = c.put(f"{PLAYBOOKS}/{made['id']}", json={"name": name, "enabled": False, "steps": [CLOSE]})
        assert r.status_code == 200, r.text
        assert (r.json()["enabled"], r.json()["trigger"]["type"], len(r.json()["steps"])) == (False, "manual", 1)
        assert r.json()["created_at"] == made["created_at"]
        assert c.delete(f"{PLAYBOOKS}/{made['id']}").status_code == 204
        assert c.get(f"{PLAYBOOKS}/{made['id']}").status_code == 404
        assert c.delete(f"{PLAYBOOKS}/{made['id']}").status_code == 404


def test_a_name_is_unique(srv: RunningServer) -> None:
    name = f"dup-{unique()}"
    with srv.client() as c:
        first = create(c, [CLOSE], name=name)
        r = c.post(PLAYBOOKS, json={"name": name, "steps": [CLOSE]})
        assert r.status_code == 409 and r.json()["error"]["message"].startswith("name:")
        other = create(c, [CLOSE])
        r = c.put(f"{PLAYBOOKS}/{other['id']}", json={"name": name, "steps": [CLOSE]})
        assert r.status_code == 409
        assert c.put(f"{PLAYBOOKS}/{first['id']}", json={"name": name, "steps": [CLOSE]}).status_code == 200


def test_a_disabled_playbook_runs_only_as_a_dry_run(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [CLOSE], enabled=False)
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid})
        assert r.status_code == 409
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid, "dry_run": True})
        assert r.status_code == 200 and r.json()["dry_run"] is True
        assert c.get(f"/api/v1/alerts/{aid}").json()["status"] == "open"


def step(action: str, **params: Any) -> dict[str, Any]:
    return {"name": "x", "steps": [{"action": action, "params": params}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b"[]", "body"),
        ({"steps": [CLOSE]}, "name"),
        ({"name": " ", "steps": [CLOSE]}, "name"),
        ({"name": "a\x00b", "steps": [CLOSE]}, "name"),
        ({"name": "x" * 129, "steps": [CLOSE]}, "name"),
        ({"name": "x", "steps": []}, "steps"),
        ({"name": "x", "steps": [CLOSE] * 51}, "steps"),
        ({"name": "x", "steps": [CLOSE], "colour": "red"}, "colour"),
        ({"name": "x", "enabled": "yes", "steps": [CLOSE]}, "enabled"),
        ({"name": "x", "trigger": {"type": "cron"}, "steps": [CLOSE]}, "trigger.type"),
        ({"name": "x", "trigger": {"min_severity": 3}, "steps": [CLOSE]}, "trigger.min_severity"),
        ({"name": "x", "trigger": {"type": "alert", "min_severity": 11}, "steps": [CLOSE]}, "trigger.min_severity"),
        (
            {"name": "x", "trigger": {"type": "alert", "alert_types": ["nope"]}, "steps": [CLOSE]},
            "trigger.alert_types[0]",
        ),
        ({"name": "x", "trigger": {"type": "alert", "tags": ["a"] * 33}, "steps": [CLOSE]}, "trigger.tags"),
        ({"name": "x", "steps": [{"action": "format_disk"}]}, "steps[0].action"),
        ({"name": "x", "steps": [{**CLOSE, "retries": 3}]}, "steps[0].retries"),
        (step("set_alert_status", status="gone"), "steps[0].params.status"),
        (step("set_alert_status"), "steps[0].params.status"),
        (step("set_alert_status", status="closed", why=1), "steps[0].params.why"),
        (step("assign_alert", assignee="a\nb"), "steps[0].params.assignee"),
        (step("add_alert_to_case", case_id="not-a-uuid"), "steps[0].params.case_id"),
        (step("add_alert_to_case", case_id=MISSING, title="t"), "steps[0].params.title"),
        (step("add_alert_to_case", severity="9"), "steps[0].params.severity"),
        (step("add_case_comment", body="hi"), "steps[0].params.case_id"),
        (step("add_case_comment", case_id=MISSING, body=" "), "steps[0].params.body"),
        (step("add_case_comment", case_id=MISSING, body="x" * 10_001), "steps[0].params.body"),
        (step("add_indicator", entity_type="planet"), "steps[0].params.entity_type"),
        (step("add_indicator", expires_in_s=5), "steps[0].params.expires_in_s"),
        (step("notify_webhook"), "steps[0].params.url"),
        (step("notify_webhook", url="ftp://127.0.0.1/x"), "steps[0].params.url"),
        (step("notify_webhook", url="http://user:pw@127.0.0.1/x"), "steps[0].params.url"),
        (step("notify_webhook", url="http://169.254.169.254/latest/meta-data/"), "steps[0].params.url"),
        (step("notify_webhook", url="http://[::ffff:169.254.169.254]/"), "steps[0].params.url"),
        (step("notify_webhook", url="http://127.0.0.1/x", timeout_s=31), "steps[0].params.timeout_s"),
    ],
)
def test_bad_playbooks_are_400_naming_the_field(srv: RunningServer, body: Any, field: str) -> None:
    with srv.client() as c:
        for send in (lambda kw: c.post(PLAYBOOKS, **kw), lambda kw: c.put(f"{PLAYBOOKS}/{MISSING}", **kw)):
            kw = (
                {"content": body, "headers": {"Content-Type": "application/json"}}
                if isinstance(body, bytes)
                else {"json": body}
            )
            r = send(kw)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_every_problem_is_listed_not_only_the_first(srv: RunningServer) -> None:
    body = {
        "name": "x",
        "steps": [{"action": "nope"}, CLOSE, step("notify_webhook", url="http://169.254.169.254/")["steps"][0]],
    }
    with srv.client() as c:
        r = c.post(PLAYBOOKS, json=body)
        assert [p["field"] for p in r.json()["error"]["details"]] == ["steps[0].action", "steps[2].params.url"]
        assert "cloud metadata address" in r.json()["error"]["details"][1]["rule"]


def test_loopback_receivers_are_refused_unless_allowed() -> None:
    doc = step("notify_webhook", url="http://127.0.0.1:9/hook")
    with pytest.raises(Invalid) as refused:
        parse_playbook(doc, PlaybookSettings())
    assert str(refused.value).startswith("steps[0].params.url:") and "loopback" in str(refused.value)
    assert parse_playbook(doc, PlaybookSettings(allow_private_urls=True))["steps"][0]["params"]["url"].endswith("/hook")


def test_bad_ids_bodies_and_queries_are_refused(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [CLOSE])
        run = f"{PLAYBOOKS}/{pb['id']}/execute"
        assert c.get(f"{PLAYBOOKS}/NOT-AN-ID").json()["error"]["message"].startswith("playbook_id:")
        assert c.get(f"{PLAYBOOKS}/{MISSING}").status_code == 404
        assert c.get(f"{PLAYBOOKS}/{MISSING}/runs").status_code == 404
        assert c.post(f"{PLAYBOOKS}/{MISSING}/execute", json={"alert_id": aid}).status_code == 404
        for body, field in [
            ({}, "alert_id"),
            ({"alert_id": "no such"}, "alert_id"),
            ({"alert_id": "missing-alert"}, "alert_id"),
            ({"alert_id": aid, "dry_run": "maybe"}, "dry_run"),
            ({"alert_id": aid, "extra": 1}, "extra"),
        ]:
            r = c.post(run, json=body)
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text
        assert c.get(PLAYBOOKS, params={"limit": 0}).status_code == 400
        assert c.get(PLAYBOOKS, params={"sort": "name"}).status_code == 400
        assert (
            c.post(PLAYBOOKS, json={"name": "big", "description": "x" * 300_000, "steps": [CLOSE]}).status_code == 413
        )
        assert c.get(f"/api/v1/alerts/{aid}").json()["status"] == "open"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "set_alert_status"}, "params.status"),
        ({"action": "set_alert_status", "params": {"status": "x"}}, "params.status"),
        ({"action": "nope"}, "action"),
        ({"params": {"status": "closed"}}, "body"),
        ({"action": "set_alert_status", "steps": [CLOSE]}, "body"),
        ({"steps": [{"action": "add_case_comment", "params": {"body": "x"}}]}, "steps[0].params.case_id"),
        ({"playbook_id": MISSING}, None),
        ({"playbook_id": "x"}, "playbook_id"),
    ],
)
def test_bad_dry_runs_are_refused_naming_the_field(srv: RunningServer, body: dict[str, Any], field: str | None) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        r = c.post("/api/v1/actions/dry-run", json={"alert_id": aid, **body})
        if field is None:
            assert r.status_code == 404
        else:
            assert r.status_code == 400 and r.json()["error"]["message"].startswith(f"{field}:"), r.text
