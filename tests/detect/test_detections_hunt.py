"""Defect hunt on /api/v1/detections/stats: the counts of a window worked out by hand, with a
detection reported ahead of the clock (not in "the last N hours") and one rule id used both by
an agentwatch rule and by an outside engine's rule (two rules, not one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.detect.helpers import wait_for
from tests.detect.test_aisoc_rules import rule_yaml, tool_event


def at(**kw: float) -> str:
    return (datetime.now(UTC) + timedelta(**kw)).isoformat()


def report(rule_id: str, severity: Any, user: str, **kw: Any) -> dict[str, Any]:
    doc = {
        "rule_id": rule_id,
        "rule_title": f"Outside {rule_id}",
        "severity": severity,
        "event_ids": [f"ref-{uuid.uuid4().hex}"],
        "entities": [{"type": "user", "value": user}],
    }
    return {**doc, **kw}


def test_stats_count_the_window_only_and_keep_rules_of_two_engines_apart(srv):
    shared = str(uuid.uuid4())
    with srv.client() as c:
        post = lambda body: c.post("/api/v1/detections", json=body)  # noqa: E731
        a = report("HUNT-A", "high", "alice", tags=["attack.execution"])
        assert post(a).status_code == 201
        assert post({**a, "event_ids": ["ref-a-2"]}).json()["merged"] is True  # one detection, two hits
        assert post(report("HUNT-B", 3, "bob", time=at(minutes=-30))).status_code == 201
        assert post(report("HUNT-C", "critical", "carl", time=at(hours=2))).status_code == 201  # ahead: not yet
        assert post(report("HUNT-D", "critical", "dora", time=at(hours=-3))).status_code == 201  # before the hour

        assert c.post("/api/v1/rules", json={"yaml": rule_yaml(shared, "hunt_stats_tool")}).status_code == 201
        c.post("/api/v1/ingest", json=tool_event("hunt_stats_tool", host="hs1"))
        wait_for(lambda: c.get("/api/v1/detections", params={"rule_id": shared}).json()["meta"]["total"] == 1)
        x = report(shared, 5, "carol", tags=["attack.exfiltration"])
        assert post(x).status_code == 201  # the outside engine's rule of the same id

        doc = c.get("/api/v1/detections/stats", params={"hours": 1}).json()
    # in the hour: A (2 hits), B, the Sigma rule's one and the outside one of the same id
    assert doc["totals"] == {"detections": 4, "hits": 5, "rules": 4}
    assert doc["by_severity"] == {"info": 0, "low": 1, "medium": 1, "high": 2, "critical": 0}
    assert doc["by_source"] == {"sigma": 1, "correlation": 0, "atr": 0, "pack": 0, "builtin": 0, "external": 3}
    assert doc["by_tactic"] == {"execution": 2, "exfiltration": 1, "unmapped": 1}
    ranked = [(r["rule_id"], r["source"], r["detections"], r["hits"]) for r in doc["by_rule"]]
    assert ranked[0] == ("HUNT-A", "external", 1, 2)
    assert set(ranked[1:]) == {("HUNT-B", "external", 1, 1), (shared, "sigma", 1, 1), (shared, "external", 1, 1)}
    titles = {(r["rule_id"], r["source"]): r["rule_title"] for r in doc["by_rule"]}
    assert titles[(shared, "sigma")] == "AiSOC face rule" and titles[(shared, "external")] == f"Outside {shared}"
    assert doc["rows_read"] == 4 and doc["truncated"] is False
