"""Defect hunt on promotion: two approvers promoting the same proposal at once, and the promoted
rule as both rule faces and the engine see it (listed once, editable as any user rule, firing)."""

from __future__ import annotations

import threading

import httpx

from tests.detect.proposals.helpers import ROUTE, create, ingest, proposal, tool_call, unique, wait_for


def test_two_promotions_at_once_store_one_rule_that_both_faces_list_and_that_fires(team):
    c, author, approver = team.client, team.analyst, team.admin1
    tool = unique("race")
    p = create(c, author, proposal(tool))
    pid, rule_id = p["id"], p["rule_id"]
    assert c.post(f"{ROUTE}/{pid}/eval", headers=author).json()["passed"] is True
    r = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "ok"}, headers=approver)
    assert r.status_code == 200, r.text

    answers: list[httpx.Response] = []
    start = threading.Barrier(2)

    def promote(headers: dict[str, str]) -> None:
        with team.srv.client() as own:
            start.wait()
            answers.append(own.post(f"{ROUTE}/{pid}/promote", headers=headers, timeout=60))

    threads = [threading.Thread(target=promote, args=(h,)) for h in (team.admin1, team.admin2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    done = c.get(f"{ROUTE}/{pid}", headers=team.viewer).json()
    assert done["status"] == "promoted" and done["promoted_rule_id"] == rule_id

    aisoc = c.get("/api/v1/rules", params={"q": rule_id, "limit": 1000}, headers=team.viewer).json()["rules"]
    sigma = c.get("/api/v1/sigma/rules", params={"q": rule_id, "limit": 1000}, headers=team.viewer).json()["rules"]
    assert [r["id"] for r in aisoc] == [rule_id] and [r["id"] for r in sigma] == [rule_id]
    assert aisoc[0]["origin"] == "user" and aisoc[0]["enabled"] is True and sigma[0]["uploaded"] is True

    ingest(c, team.admin1, [tool_call(tool, "race-host")])

    def fired() -> list[dict[str, object]]:
        r = c.get("/api/v1/detections", params={"rule_id": rule_id}, headers=team.viewer)
        assert r.status_code == 200, r.text
        return r.json()["detections"]

    hits = wait_for(fired)
    assert len(hits) == 1 and hits[0]["source"] == "sigma"
