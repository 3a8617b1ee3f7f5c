"""With authentication off there is one local operator: the four-eyes rule cannot apply, and the
whole lifecycle (propose, eval, approve, promote) works for it."""

from __future__ import annotations

from tests.detect.proposals.helpers import ROUTE, create, proposal, unique


def test_the_local_operator_runs_the_whole_lifecycle(open_server):
    with open_server.client() as c:
        p = create(c, {}, proposal(unique("local")))
        assert p["author"] == "local:local"
        assert c.post(f"{ROUTE}/{p['id']}/eval").json()["passed"] is True
        r = c.post(f"{ROUTE}/{p['id']}/decide", json={"decision": "approve", "reason": "solo lab"})
        assert r.status_code == 200 and r.json()["status"] == "approved"
        r = c.post(f"{ROUTE}/{p['id']}/promote")
        assert r.status_code == 200 and r.json()["promoted_rule_id"] == p["rule_id"]
        assert c.get(f"/api/v1/sigma/rules/{p['rule_id']}").json()["uploaded"] is True
