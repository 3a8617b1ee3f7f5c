"""Suggestions for a case, each made from seeded data and absent without it, and running the
actions they offer, on a real server (authentication off), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from agentwatch.soc.cases.schema import cases
from tests.copilot.seed import age_alert, alert, context, kinds, of_kind, run, unique
from tests.support.server import RunningServer


def _case(c: Any, alert_ids: list[str], **body: Any) -> dict[str, Any]:
    r = c.post("/api/v1/cases", json={"title": "Investigation", "alert_ids": alert_ids, **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_alerts_on_the_cases_entities_not_linked_are_offered_for_linking(open_server: RunningServer) -> None:
    host = unique()
    linked = alert(open_server.aw.engine, ("host", host))
    loose = alert(open_server.aw.engine, ("host", host), severity=7)
    alert(open_server.aw.engine, ("host", unique()))  # elsewhere: not suggested
    with open_server.client() as c:
        case = _case(c, [linked["id"]], assignee="someone")
        (hit,) = of_kind(context(c, "case", case["id"]), "unlinked_alert")
        assert hit["data"]["alert_id"] == loose["id"] and f"host {host}" in hit["reason"]
        assert hit["action"]["kind"] == "link_alert_to_case"
        done = run(c, hit["action"])
        assert done.status_code == 200, done.text
        assert c.get(f"/api/v1/cases/{case['id']}").json()["alert_ids"] == [linked["id"], loose["id"]]
        assert "unlinked_alert" not in kinds(context(c, "case", case["id"]))


def test_an_unassigned_case_offers_assigning_it_to_the_caller(open_server: RunningServer) -> None:
    with open_server.client() as c:
        case = _case(c, [])
        (hit,) = of_kind(context(c, "case", case["id"]), "unassigned")
        assert hit["action"]["kind"] == "assign_case"
        done = run(c, hit["action"])
        assert done.status_code == 200, done.text
        after = c.get(f"/api/v1/cases/{case['id']}").json()
        assert after["assignee"] == "local"
        assert after["timeline"][-1]["fields"] == ["assignee"]  # changed through the cases store
        assert "unassigned" not in kinds(context(c, "case", case["id"]))
        assigned = _case(c, [], assignee="bob")
        assert "unassigned" not in kinds(context(c, "case", assigned["id"]))


def test_an_sla_breach_among_the_cases_alerts_is_cited(open_server: RunningServer) -> None:
    late = alert(open_server.aw.engine, ("host", unique()), severity=9)
    age_alert(open_server.aw.engine, late["id"], 20 * 60)
    fresh = alert(open_server.aw.engine, ("host", unique()), severity=9)
    with open_server.client() as c:
        case = _case(c, [late["id"]], assignee="x")
        (hit,) = of_kind(context(c, "case", case["id"]), "sla_breached")
        assert hit["data"]["alert_id"] == late["id"] and late["id"] in hit["reason"]
        on_time = _case(c, [fresh["id"]], assignee="x")
        doc = context(c, "case", on_time["id"])
        assert "sla_breached" not in kinds(doc) and "sla_due_soon" not in kinds(doc)


def test_a_case_without_activity_is_stale_until_something_happens(open_server: RunningServer) -> None:
    with open_server.client() as c:
        case = _case(c, [], assignee="x")
        assert "stale" not in kinds(context(c, "case", case["id"]))
        with open_server.aw.engine.begin() as conn:
            conn.execute(update(cases).where(cases.c.id == case["id"]).values(updated_at=time.time() - 8 * 86400))
        (hit,) = of_kind(context(c, "case", case["id"]), "stale")
        assert "8 days" in hit["reason"]
        assert c.post(f"/api/v1/cases/{case['id']}/comments", json={"body": "looking"}).status_code == 201
        assert "stale" not in kinds(context(c, "case", case["id"]))
