"""Suggestions for an alert, each made from seeded data and absent without it, and running the
actions they offer, on a real server (authentication off: the caller is ``local``), on SQLite
and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from agentwatch.soc.sla import evaluate
from tests.copilot.seed import age_alert, alert, context, kinds, of_kind, run, unique
from tests.support.server import RunningServer


def _case(c: Any, alert_ids: list[str]) -> dict[str, Any]:
    r = c.post("/api/v1/cases", json={"title": "Investigation", "alert_ids": alert_ids})
    assert r.status_code == 201, r.text
    return r.json()


def test_an_open_case_sharing_the_alerts_entity_is_suggested_and_linking_runs_once(open_server: RunningServer) -> None:
    host = unique()
    earlier = alert(open_server.aw.engine, ("host", host))
    fresh = alert(open_server.aw.engine, ("host", host), ("user", unique("u")))
    with open_server.client() as c:
        case = _case(c, [earlier["id"]])
        (hit,) = of_kind(context(c, "alert", fresh["id"]), "related_case")
        assert hit["data"]["case_id"] == case["id"]
        assert hit["data"]["alert_ids"] == [earlier["id"]]
        assert f"host {host}" in hit["reason"] and case["id"] in hit["reason"]
        action = hit["action"]
        assert action["kind"] == "link_alert_to_case" and action["permissions"] == ["cases:write"]
        done = run(c, action)
        assert done.status_code == 200, done.text
        assert done.json()["result"] == {"case_id": case["id"], "alert_id": fresh["id"], "linked": True}
        assert c.get(f"/api/v1/cases/{case['id']}").json()["alert_ids"] == [earlier["id"], fresh["id"]]
        again = run(c, action)
        assert again.status_code == 409 and "runs once" in again.json()["error"]["message"]
        assert "related_case" not in kinds(context(c, "alert", fresh["id"]))  # linked now


def test_a_closed_case_or_no_case_suggests_no_link(open_server: RunningServer) -> None:
    host = unique()
    earlier = alert(open_server.aw.engine, ("host", host))
    fresh = alert(open_server.aw.engine, ("host", host))
    with open_server.client() as c:
        case = _case(c, [earlier["id"]])
        assert c.delete(f"/api/v1/cases/{case['id']}").status_code == 200
        assert "related_case" not in kinds(context(c, "alert", fresh["id"]))
        alone = alert(open_server.aw.engine, ("host", unique()))
        doc = context(c, "alert", alone["id"])
        assert "related_case" not in kinds(doc) and "related_alerts" not in kinds(doc)


def test_other_alerts_on_the_same_entity_offer_a_case_holding_them(open_server: RunningServer) -> None:
    ip = "198.51.100.23"
    user = unique("u")
    first = alert(open_server.aw.engine, ("user", user), ("ip", ip), severity=4)
    second = alert(open_server.aw.engine, ("user", user), severity=8)
    with open_server.client() as c:
        (hit,) = of_kind(context(c, "alert", first["id"]), "related_alerts")
        assert hit["data"]["alert_ids"] == [second["id"]]
        assert f"user {user}" in hit["reason"] and second["id"] in hit["reason"]
        assert hit["action"]["kind"] == "create_case"
        done = run(c, hit["action"])
        assert done.status_code == 200, done.text
        case = c.get(f"/api/v1/cases/{done.json()['result']['case_id']}").json()
        assert case["alert_ids"] == [first["id"], second["id"]]
        assert case["severity"] == 8 and case["created_by"] == "local:local"


def test_closed_alerts_on_the_entity_are_not_related(open_server: RunningServer) -> None:
    host = unique()
    first = alert(open_server.aw.engine, ("host", host))
    second = alert(open_server.aw.engine, ("host", host))
    with open_server.client() as c:
        assert c.patch(f"/api/v1/alerts/{second['id']}", json={"status": "closed"}).status_code == 200
        assert "related_alerts" not in kinds(context(c, "alert", first["id"]))


def test_an_entity_meeting_an_intel_indicator_is_cited(open_server: RunningServer) -> None:
    with open_server.client() as c:
        added = c.post(
            "/api/v1/intel/iocs",
            json={"iocs": [{"type": "cidr", "value": "192.0.2.0/24", "source": "blocklist", "description": "c2 net"}]},
        )
        assert added.status_code == 200, added.text
        hit_alert = alert(open_server.aw.engine, ("ip", "192.0.2.9"), ("host", unique()))
        (hit,) = of_kind(context(c, "alert", hit_alert["id"]), "intel_match")
        assert hit["data"]["indicator"]["value"] == "192.0.2.0/24"
        assert "192.0.2.9" in hit["reason"] and "blocklist" in hit["reason"] and hit["action"] is None
        clean = alert(open_server.aw.engine, ("ip", "198.18.0.1"))
        assert "intel_match" not in kinds(context(c, "alert", clean["id"]))


def test_a_playbook_whose_trigger_matches_is_offered_and_runs(open_server: RunningServer) -> None:
    tag = unique("tag")
    with open_server.client() as c:
        made = c.post(
            "/api/v1/playbooks",
            json={
                "name": unique("pb"),
                "trigger": {"type": "alert", "min_severity": 5, "tags": [tag]},
                "steps": [{"action": "assign_alert", "params": {"assignee": "pb-bot"}}],
            },
        )
        assert made.status_code == 201, made.text
        pb = made.json()
        tagged = alert(open_server.aw.engine, ("host", unique()), severity=6, tags=(tag,))
        (hit,) = of_kind(context(c, "alert", tagged["id"]), "playbook_match")
        assert hit["data"]["playbook_id"] == pb["id"] and tag in hit["reason"]
        assert hit["action"]["kind"] == "run_playbook" and hit["action"]["permissions"] == ["playbooks:run"]
        done = run(c, hit["action"])
        assert done.status_code == 200, done.text
        assert done.json()["result"]["run"]["status"] == "succeeded"
        assert c.get(f"/api/v1/alerts/{tagged['id']}").json()["assignee"] == "pb-bot"
        runs = c.get(f"/api/v1/playbooks/{pb['id']}/runs").json()["runs"]
        assert [(r["alert_id"], r["trigger"]) for r in runs] == [(tagged["id"], "manual")]
        too_low = alert(open_server.aw.engine, ("host", unique()), severity=3, tags=(tag,))
        untagged = alert(open_server.aw.engine, ("host", unique()), severity=9)
        assert "playbook_match" not in kinds(context(c, "alert", too_low["id"]))
        assert not [
            s
            for s in of_kind(context(c, "alert", untagged["id"]), "playbook_match")
            if s["data"]["playbook_id"] == pb["id"]
        ]


def test_an_unassigned_alert_offers_assigning_it_to_the_caller(open_server: RunningServer) -> None:
    fresh = alert(open_server.aw.engine, ("host", unique()))
    with open_server.client() as c:
        (hit,) = of_kind(context(c, "alert", fresh["id"]), "unassigned")
        assert hit["action"]["kind"] == "assign_alert" and "local" in hit["action"]["label"]
        done = run(c, hit["action"])
        assert done.status_code == 200, done.text
        assert c.get(f"/api/v1/alerts/{fresh['id']}").json()["assignee"] == "local"
        assert "unassigned" not in kinds(context(c, "alert", fresh["id"]))


def test_sla_due_soon_and_breached_follow_the_targets(open_server: RunningServer) -> None:
    critical = alert(open_server.aw.engine, ("host", unique()), severity=9)  # 15 min to acknowledge
    low = alert(open_server.aw.engine, ("host", unique()), severity=2)  # a day to acknowledge
    late = alert(open_server.aw.engine, ("host", unique()), severity=9)
    age_alert(open_server.aw.engine, late["id"], 20 * 60)
    with open_server.client() as c:
        (soon,) = of_kind(context(c, "alert", critical["id"]), "sla_due_soon")
        assert soon["data"]["kind"] == "acknowledge" and soon["data"]["band"] == "critical"
        assert 0 < soon["data"]["seconds_left"] <= 15 * 60 and "15 minutes" in soon["reason"]
        low_doc = context(c, "alert", low["id"])
        assert "sla_due_soon" not in kinds(low_doc) and "sla_breached" not in kinds(low_doc)
        (breached,) = of_kind(context(c, "alert", late["id"]), "sla_breached")
        assert breached["data"]["kind"] == "acknowledge" and breached["data"]["seconds_left"] < 0
        assert "ago" in breached["reason"]
        assert c.patch(f"/api/v1/alerts/{late['id']}", json={"status": "acknowledged"}).status_code == 200
        assert "sla_breached" not in kinds(context(c, "alert", late["id"]))


def test_without_a_backend_there_is_no_summary(open_server: RunningServer) -> None:
    fresh = alert(open_server.aw.engine, ("host", unique()))
    with open_server.client() as c:
        doc = context(c, "alert", fresh["id"], params={"summary": "true"})
    assert doc["summary"] is None and doc["summary_error"].startswith("llm: disabled")
    assert "unassigned" in kinds(doc)


def test_sla_clocks_of_a_reopened_alert_run_from_its_reopening_as_the_watch_counts_them(
    open_server: RunningServer,
) -> None:
    # breached in its first life; closed (the watch sees it), then reopened: a new life, whose
    # acknowledge clock starts at the reopening, is due soon, not breached 20 minutes ago
    engine = open_server.aw.engine
    late = alert(engine, ("host", unique()), severity=9)
    age_alert(engine, late["id"], 20 * 60)
    with open_server.client() as c:
        assert "sla_breached" in kinds(context(c, "alert", late["id"]))
        assert c.patch(f"/api/v1/alerts/{late['id']}", json={"status": "closed"}).status_code == 200
        evaluate.sweep(engine, time.time(), 30 * 86_400.0)
        assert c.patch(f"/api/v1/alerts/{late['id']}", json={"status": "open"}).status_code == 200
        for watch_saw_the_reopening in (False, True):
            if watch_saw_the_reopening:
                evaluate.sweep(engine, time.time(), 30 * 86_400.0)
            doc = context(c, "alert", late["id"])
            assert "sla_breached" not in kinds(doc)
            (soon,) = [s for s in of_kind(doc, "sla_due_soon") if s["data"]["kind"] == "acknowledge"]
            assert 14 * 60 < soon["data"]["seconds_left"] <= 15 * 60


def test_changing_the_acknowledge_limit_leaves_the_resolve_clock_where_it_was(open_server: RunningServer) -> None:
    # resolve overdue by 10 minutes; a change of the acknowledge limit does not move the resolve
    # limit's start, so the clock stays 10 minutes overdue (not due "now", at the change)
    engine = open_server.aw.engine
    old = alert(engine, ("host", unique()), severity=9)  # 4 h to resolve
    age_alert(engine, old["id"], 4 * 3600 + 600)
    with open_server.client() as c:
        assert c.patch(f"/api/v1/alerts/{old['id']}", json={"status": "acknowledged"}).status_code == 200
        try:
            r = c.put("/api/v1/sla/configs/critical", json={"acknowledge_minutes": 20})
            assert r.status_code == 200, r.text
            (late,) = of_kind(context(c, "alert", old["id"]), "sla_breached")
            assert late["data"]["kind"] == "resolve" and late["data"]["seconds_left"] < -590
        finally:
            c.put("/api/v1/sla/configs/critical", json={"acknowledge_minutes": 15})
