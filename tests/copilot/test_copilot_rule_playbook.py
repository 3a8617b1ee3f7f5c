"""Suggestions for a rule (labels, volume, noisy: disable) and for a playbook (failing runs), on
a real server (authentication off), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import update

from agentwatch.soc.playbooks import liveness
from agentwatch.soc.playbooks import store as playbook_store
from agentwatch.soc.playbooks.schema import playbook_runs
from tests.copilot.seed import alert, context, kinds, many, of_kind, run, unique
from tests.soc.helpers import MISSING
from tests.support.server import RunningServer


def _rule(c: Any) -> str:
    rule_id = str(uuid.uuid4())
    text = f"""\
title: Copilot test rule
id: {rule_id}
status: experimental
level: high
logsource: {{product: agentwatch, category: tool_call}}
detection:
  sel:
    tool_name: cp-{rule_id[:8]}
  condition: sel
"""
    r = c.post("/api/v1/rules", json={"yaml": text})
    assert r.status_code == 201, r.text
    return rule_id


def _label(c: Any, alert_id: str, verdict: str) -> None:
    assert c.post(f"/api/v1/alerts/{alert_id}/feedback", json={"feedback": verdict}).status_code == 204


def test_a_rule_mostly_false_positive_is_noisy_and_disabling_it_runs(open_server: RunningServer) -> None:
    with open_server.client() as c:
        rule_id = _rule(c)
        raised = [alert(open_server.aw.engine, ("host", unique()), rule_id=rule_id) for _ in range(3)]
        _label(c, raised[0]["id"], "tp")
        _label(c, raised[1]["id"], "tp")  # changed its mind: the newest verdict counts
        _label(c, raised[1]["id"], "fp")
        _label(c, raised[2]["id"], "fp")
        doc = context(c, "rule", rule_id)
        (labels,) = of_kind(doc, "rule_feedback")
        assert labels["data"] == {"tp": 1, "fp": 2, "fp_ratio": 0.667}
        assert "1 are true positives and 2 false positives" in labels["reason"]
        (volume,) = of_kind(doc, "rule_volume")
        assert volume["data"]["alerts"] == 3 and "3 alert(s) in the last 7 day(s)" in volume["reason"]
        (noisy,) = of_kind(doc, "noisy_rule")
        assert noisy["action"]["kind"] == "disable_rule" and "67%" in noisy["reason"]
        done = run(c, noisy["action"])
        assert done.status_code == 200, done.text
        assert done.json()["result"] == {"rule_id": rule_id, "enabled": False}
        assert c.get(f"/api/v1/rules/{rule_id}").json()["enabled"] is False
        assert "noisy_rule" not in kinds(context(c, "rule", rule_id))  # disabled already


def test_a_rule_raising_many_alerts_is_noisy_without_labels(open_server: RunningServer) -> None:
    with open_server.client() as c:
        loud = _rule(c)
        many(open_server.aw.engine, loud, 50)  # copilot.noisy_alerts
        doc = context(c, "rule", loud)
        assert kinds(doc) == ["rule_volume", "noisy_rule"]
        (noisy,) = of_kind(doc, "noisy_rule")
        assert "50 alerts in 7 day(s)" in noisy["reason"] and noisy["action"]["kind"] == "disable_rule"
        almost = _rule(c)
        many(open_server.aw.engine, almost, 49)
        assert kinds(context(c, "rule", almost)) == ["rule_volume"]


def test_a_quiet_rule_is_not_noisy_and_a_rule_without_alerts_has_nothing(open_server: RunningServer) -> None:
    with open_server.client() as c:
        quiet = _rule(c)
        raised = alert(open_server.aw.engine, ("host", unique()), rule_id=quiet)
        _label(c, raised["id"], "fp")  # one label: too few to judge the ratio
        doc = context(c, "rule", quiet)
        assert kinds(doc) == ["rule_feedback", "rule_volume"]
        assert context(c, "rule", _rule(c))["suggestions"] == []


def test_a_run_interrupted_when_its_process_died_is_flagged_with_why(open_server: RunningServer) -> None:
    """An interrupted run may have left steps undone: the analyst is told, with the run's reason."""
    engine = open_server.aw.engine
    target = alert(engine, ("host", unique()))
    with open_server.client() as c:
        pb = c.post(
            "/api/v1/playbooks",
            json={
                "name": unique("pb"),
                "steps": [{"action": "set_alert_status", "params": {"status": "acknowledged"}}],
            },
        ).json()
        started = playbook_store.start_run(
            engine, pb["id"], target["id"], dry_run=False, trigger="manual", started_by="u", held_by=None
        )
        assert started is not None
        with engine.begin() as conn:  # its process died a while ago: no heartbeat since
            conn.execute(update(playbook_runs).where(playbook_runs.c.id == started[0]).values(heartbeat_at=0.0))
        assert len(playbook_store.sweep_stale(engine, time.time() - 60, liveness.REASON)) == 1
        (hit,) = of_kind(context(c, "playbook", pb["id"]), "failing_runs")
    assert hit["data"]["failed"] == 1 and hit["data"]["run_ids"] == [started[0]]
    assert "ended interrupted" in hit["reason"] and "may or may not have taken effect" in hit["reason"]


def test_a_playbook_whose_runs_fail_is_flagged(open_server: RunningServer) -> None:
    target = alert(open_server.aw.engine, ("host", unique()))
    with open_server.client() as c:
        broken = c.post(
            "/api/v1/playbooks",
            json={"name": unique("pb"), "steps": [{"action": "add_alert_to_case", "params": {"case_id": MISSING}}]},
        ).json()
        fine = c.post(
            "/api/v1/playbooks",
            json={
                "name": unique("pb"),
                "steps": [{"action": "set_alert_status", "params": {"status": "acknowledged"}}],
            },
        ).json()
        for pb in (broken, fine):
            r = c.post(f"/api/v1/playbooks/{pb['id']}/execute", json={"alert_id": target["id"]})
            assert r.status_code == 200, r.text
        (hit,) = of_kind(context(c, "playbook", broken["id"]), "failing_runs")
        assert hit["data"]["failed"] == 1 and hit["data"]["runs"] == 1
        assert "does not exist" in hit["reason"] and target["id"] in hit["reason"]
        assert context(c, "playbook", fine["id"])["suggestions"] == []  # the caller (local) may do every step
