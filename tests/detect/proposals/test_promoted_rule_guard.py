"""A rule that went live through a detection proposal keeps its four-eyes decision: an analyst
(``rules:write`` only) may not replace or delete it through the rule catalogue; an approver may."""

from __future__ import annotations

from tests.detect.proposals.helpers import ROUTE, create, proposal, sigma, unique


def test_a_promoted_rule_is_changed_or_deleted_only_with_rules_approve(team):
    c, author, approver = team.client, team.admin1, team.admin2
    tool = unique("guarded")
    p = create(c, author, proposal(tool))
    pid, rule_id = p["id"], p["rule_id"]
    assert c.post(f"{ROUTE}/{pid}/eval", headers=team.analyst).json()["passed"] is True
    decided = c.post(f"{ROUTE}/{pid}/decide", json={"decision": "approve", "reason": "ok"}, headers=approver)
    assert decided.status_code == 200, decided.text
    assert c.post(f"{ROUTE}/{pid}/promote", headers=approver).status_code == 200

    changed = {"yaml": sigma(unique("elsewhere"), rule_id=rule_id, title="Quietly widened")}
    r = c.put(f"/api/v1/rules/{rule_id}", json=changed, headers=team.analyst)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"].startswith("rule_id:") and "'rules:approve'" in r.json()["error"]["message"]
    assert c.delete(f"/api/v1/rules/{rule_id}", headers=team.analyst).status_code == 403
    # a dry run changes nothing: allowed
    assert c.put(f"/api/v1/rules/{rule_id}", json={**changed, "dry_run": True}, headers=team.analyst).status_code == 200
    assert c.get(f"/api/v1/rules/{rule_id}", headers=team.viewer).json()["title"] != "Quietly widened"

    # an analyst's own rule stays theirs to change
    own = unique("own")
    made = c.post("/api/v1/rules", json={"yaml": sigma(own)}, headers=team.analyst)
    assert made.status_code == 201, made.text
    assert c.delete(f"/api/v1/rules/{made.json()['rules'][0]['id']}", headers=team.analyst).status_code == 204

    # the approver may
    assert c.put(f"/api/v1/rules/{rule_id}", json=changed, headers=approver).status_code == 200
    assert c.delete(f"/api/v1/rules/{rule_id}", headers=approver).status_code == 204
