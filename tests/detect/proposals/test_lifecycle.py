"""Review, four-eyes decision and promotion: only an approved proposal with a passing eval of its
current logic goes live, through the rule store ``/api/v1/sigma/rules`` uses, and then fires."""

from __future__ import annotations

from tests.detect.proposals.helpers import ROUTE, create, ingest, proposal, sigma, tool_call, unique, wait_for


def _sigma_alerts(c, headers, rule_id: str) -> list:
    r = c.get("/api/v1/alerts", params={"type": "sigma", "limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return [a for a in r.json()["alerts"] if a["rule_id"] == rule_id]


def test_four_eyes_promotion_loads_a_rule_that_fires(team):
    c, author, approver = team.client, team.admin1, team.admin2
    tool = unique("live")
    p = create(c, author, proposal(tool))
    pid, rule_id = p["id"], p["rule_id"]
    assert p["author"].startswith("user:")

    # comments from anyone with rules:write, shown oldest first
    for who, text in ((team.analyst, "looks narrow enough"), (author, "thanks")):
        r = c.post(f"{ROUTE}/{pid}/comment", json={"body": text}, headers=who)
        assert r.status_code == 201 and r.json()["body"] == text
    assert [x["body"] for x in c.get(f"{ROUTE}/{pid}", headers=team.viewer).json()["comments"]] == [
        "looks narrow enough",
        "thanks",
    ]

    # not approved yet: promotion is refused naming the status
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 409 and "'open'" in r.json()["error"]["message"]
    assert c.post(f"{ROUTE}/{pid}/eval", headers=team.analyst).json()["passed"] is True

    # the author may not approve, neither signed in nor with an API key of their own
    r = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "mine"}, headers=author)
    assert r.status_code == 403 and "four-eyes" in r.json()["error"]["message"]
    key = c.post("/api/v1/api-keys", headers=author, json={"name": "k", "scopes": ["rules:approve"]})
    assert key.status_code == 201, key.text
    r = c.post(
        f"{ROUTE}/{pid}/decide",
        json={"decision": "approve", "reason": "mine"},
        headers={"X-API-Key": key.json()["key"]},
    )
    assert r.status_code == 403 and "four-eyes" in r.json()["error"]["message"]
    # an analyst cannot decide at all
    r = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "ok"}, headers=team.analyst)
    assert r.status_code == 403 and "rules:approve" in r.json()["error"]["message"]
    # a stale logic version is refused
    r = c.post(
        f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "ok", "logic_version": 7}, headers=approver
    )
    assert r.status_code == 409 and "logic version 1" in r.json()["error"]["message"]

    r = c.post(
        f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "tested", "logic_version": 1}, headers=approver
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "approved" and doc["decision"]["decision"] == "approved"
    assert doc["decision"]["reason"] == "tested" and doc["decision"]["by"] != p["author"]
    r = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "reject", "reason": "again"}, headers=approver)
    assert r.status_code == 409 and "'approved'" in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == {"status": "approved"}
    r = c.patch(f"{ROUTE}/{pid}", json={"logic": sigma(tool + "-wider")}, headers=author)
    assert r.status_code == 409 and "'approved'" in r.json()["error"]["message"]

    assert c.get(f"/api/v1/sigma/rules/{rule_id}", headers=team.viewer).status_code == 404
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "promoted" and r.json()["promoted_rule_id"] == rule_id
    rule = c.get(f"/api/v1/sigma/rules/{rule_id}", headers=team.viewer).json()
    assert rule["uploaded"] is True and rule["enabled"] is True and rule["yaml"] == p["logic"]
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 409 and "'promoted'" in r.json()["error"]["message"]
    # its rule id is taken now: a new proposal of the same logic could never be promoted
    r = c.post(ROUTE, json=proposal(tool, logic=p["logic"]), headers=team.analyst)
    assert r.status_code == 409 and r.json()["error"]["details"] == {"rule_id": rule_id}

    # the live engine runs it: a new event of the tool raises an alert of the rule
    ingest(c, team.admin1, [tool_call(tool, "fresh-host")])
    found = wait_for(lambda: _sigma_alerts(c, team.admin1, rule_id))
    assert found[0]["title"] == "Agent calls a watched tool"

    entries = c.get("/api/v1/audit", params={"action": "detection_proposal.*"}, headers=team.admin1).json()["entries"]
    mine = [e for e in entries if e["target"] == f"detection_proposal:{pid}"]
    assert [e["action"] for e in mine] == ["detection_proposal.promote", "detection_proposal.approve"]
    assert mine[0]["details"]["rule_id"] == rule_id and mine[0]["actor"]["name"] == "admin2@example.com"


def test_changing_the_logic_needs_a_new_eval_before_promotion(team):
    c, author, approver = team.client, team.analyst, team.admin1
    tool = unique("edit")
    p = create(c, author, proposal(tool))
    pid = p["id"]
    assert c.post(f"{ROUTE}/{pid}/eval", headers=author).json()["passed"] is True

    # only the author changes it; a new logic makes version 2 and reopens it
    r = c.patch(f"{ROUTE}/{pid}", json={"title": "someone else's idea"}, headers=team.admin2)
    assert r.status_code == 403 and "author" in r.json()["error"]["message"]
    new_logic = sigma(tool + "-v2")
    cases = {"must_match": [tool_call(tool + "-v2")], "must_not_match": [tool_call(tool)]}
    r = c.patch(f"{ROUTE}/{pid}", json={"logic": new_logic, "test_cases": cases}, headers=author)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["logic_version"] == 2 and doc["status"] == "open" and doc["latest_eval"] is None
    assert doc["rule_id"] != p["rule_id"] and doc["logic"] == new_logic
    assert [e["logic_version"] for e in doc["evals"]] == [1]  # kept in the history, no longer counted

    r = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "v2 is fine"}, headers=approver)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 409 and "logic version 2 has no eval" in r.json()["error"]["message"]
    assert c.get(f"/api/v1/sigma/rules/{doc['rule_id']}", headers=team.viewer).status_code == 404

    ev = c.post(f"{ROUTE}/{pid}/eval", headers=author).json()
    assert ev["passed"] is True and ev["logic_version"] == 2
    assert c.get(f"{ROUTE}/{pid}", headers=author).json()["status"] == "approved"  # an eval keeps the decision
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 200 and r.json()["promoted_rule_id"] == doc["rule_id"]


def test_a_failing_eval_blocks_promotion_and_rejection_is_final(team):
    c, author, approver = team.client, team.analyst, team.admin1
    tool = unique("bad")
    p = create(c, author, proposal(tool, test_cases={"must_match": [tool_call("unrelated")]}))
    pid = p["id"]
    assert c.post(f"{ROUTE}/{pid}/eval", headers=author).json()["passed"] is False
    assert (
        c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "r"}, headers=approver).status_code
        == 200
    )
    r = c.post(f"{ROUTE}/{pid}/promote", headers=approver)
    assert r.status_code == 409 and "failed" in r.json()["error"]["message"]

    q = create(c, author, proposal(unique("rej")))
    r = c.post(f"{ROUTE}/{q['id']}/decide", json={"decision": "reject", "reason": "too broad"}, headers=approver)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert r.json()["decision"] == {**r.json()["decision"], "decision": "rejected", "reason": "too broad"}
    for path in ("eval", "promote"):
        r = c.post(f"{ROUTE}/{q['id']}/{path}", headers=approver)
        assert r.status_code == 409 and "'rejected'" in r.json()["error"]["message"], path
    r = c.post(f"{ROUTE}/{q['id']}/decide", json={"decision": "approve", "reason": "changed my mind"}, headers=approver)
    assert r.status_code == 409 and r.json()["error"]["details"] == {"status": "rejected"}
