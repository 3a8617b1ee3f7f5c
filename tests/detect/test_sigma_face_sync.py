"""Seerflow's rule routes (``/api/v1/sigma/rules``) see what another node sharing the store did
at once, as the AiSOC face does: they compare with the store before answering, and a flag set on
a rule another node deleted is a 404 that leaves no flag behind to block the id."""

from __future__ import annotations

from tests.detect.helpers import with_detection
from tests.detect.test_aisoc_rules import new_id, rule_yaml
from tests.support.server import run_server


def test_the_sigma_face_answers_what_another_node_just_did(settings):
    rid = new_id()
    cfg = with_detection(settings, pack=False)
    with run_server(cfg) as one, run_server(cfg) as two, one.client() as c1, two.client() as c2:
        assert c1.post("/api/v1/sigma/rules", json={"yaml": rule_yaml(rid, "sigma_node")}).status_code == 201
        # no wait for the 2-second comparison: the read compares first
        got = c2.get(f"/api/v1/sigma/rules/{rid}")
        assert got.status_code == 200 and got.json()["enabled"] is True, got.text
        assert rid in [r["id"] for r in c2.get("/api/v1/sigma/rules", params={"q": rid}).json()["rules"]]
        assert c1.patch(f"/api/v1/sigma/rules/{rid}", json={"enabled": False}).status_code == 200
        assert c2.get(f"/api/v1/sigma/rules/{rid}").json()["enabled"] is False

        assert c1.delete(f"/api/v1/rules/{rid}").status_code == 204
        late = c2.patch(f"/api/v1/sigma/rules/{rid}", json={"enabled": True})
        assert late.status_code == 404, late.text
        # nothing was left behind: the id can be uploaded again, on either node
        again = c1.post("/api/v1/sigma/rules", json={"yaml": rule_yaml(rid, "sigma_node")})
        assert again.status_code == 201, again.text
        assert c2.get(f"/api/v1/sigma/rules/{rid}").json()["enabled"] is True
