"""The eval gate runs the proposed rule: on its test cases, on stored events of the window, on the
events of alerts analysts judged; against the baseline of the live rule set."""

from __future__ import annotations

from ulid import ULID

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from tests.detect.proposals.conftest import MAX_WINDOW_HITS
from tests.detect.proposals.helpers import ROUTE, create, ingest, proposal, sigma, tool_call, unique


def test_eval_matches_cases_and_stored_events_and_names_entities(team):
    c, analyst = team.client, team.analyst
    tool = unique("wt")
    # 2 events on host alpha, 1 on host beta of the watched tool; 2 of other tools (no match)
    ingest(c, team.admin1, [tool_call(tool, "alpha"), tool_call(tool, "alpha"), tool_call(tool, "beta")])
    ingest(c, team.admin1, [tool_call(tool + "x", "alpha"), tool_call("ls-" + tool, "gamma")])
    p = create(c, analyst, proposal(tool))
    assert p["status"] == "open" and p["logic_version"] == 1 and p["latest_eval"] is None

    r = c.post(f"{ROUTE}/{p['id']}/eval", headers=analyst)
    assert r.status_code == 201, r.text
    ev = r.json()
    res = ev["result"]
    assert ev["passed"] is True and ev["logic_version"] == 1
    assert res["checks"] == {"must_match": True, "must_not_match": True, "window_hits": True, "within_time": True}
    assert res["test_cases"]["must_match"] == {"total": 1, "passed": 1, "failed": []}
    assert res["test_cases"]["must_not_match"] == {"total": 1, "passed": 1, "failed": []}
    assert res["window"]["events_hit"] == 3 and res["window"]["entities_hit"] == 2
    assert res["window"]["top_entities"] == [
        {"type": "host", "value": "alpha", "events": 2},
        {"type": "host", "value": "beta", "events": 1},
    ]
    assert res["rule_id"] == p["rule_id"] and res["window"]["max_events_hit"] == MAX_WINDOW_HITS

    got = c.get(f"{ROUTE}/{p['id']}", headers=team.viewer).json()
    assert got["status"] == "evaluated" and got["latest_eval"]["id"] == ev["id"]
    assert [e["id"] for e in got["evals"]] == [ev["id"]]


def test_eval_fails_on_a_case_and_on_too_many_window_hits(team):
    c, analyst = team.client, team.analyst
    tool = unique("flood")
    ingest(c, team.admin1, [tool_call(tool, f"h{i}") for i in range(MAX_WINDOW_HITS + 1)])
    p = create(c, analyst, proposal(tool))
    res = c.post(f"{ROUTE}/{p['id']}/eval", headers=analyst).json()["result"]
    assert res["passed"] is False and res["window"]["events_hit"] == MAX_WINDOW_HITS + 1
    assert res["checks"] == {"must_match": True, "must_not_match": True, "window_hits": False, "within_time": True}

    quiet = unique("quiet")
    cases = {
        "must_match": [tool_call(quiet), tool_call(quiet + "-nope")],  # the second cannot match
        "must_not_match": [tool_call("other"), tool_call(quiet)],  # the second does match
    }
    q = create(c, analyst, proposal(quiet, test_cases=cases))
    res = c.post(f"{ROUTE}/{q['id']}/eval", headers=analyst).json()["result"]
    assert res["passed"] is False and res["window"]["events_hit"] == 0
    assert res["test_cases"]["must_match"] == {"total": 2, "passed": 1, "failed": [1]}
    assert res["test_cases"]["must_not_match"] == {"total": 2, "passed": 1, "failed": [1]}
    assert res["checks"] == {"must_match": False, "must_not_match": False, "window_hits": True, "within_time": True}


def _alert(team, event_ids: list[str], n: str) -> str:
    events = [
        Event(body={}, event_id=i, event_type="agent.tool_call", ts=1000.0, received_at=1000.0) for i in event_ids
    ]
    ent = {"type": "host", "value": n, "id": entity_id("host", n)}
    events[0].entities = [ent]
    finding = Finding("atr", f"rule-{n}", f"Alert {n}", 6, events, alert_type="atr", dedup_key=f"prop-{n}")
    ((alert, _),) = store_findings(team.srv.aw.engine, [finding], 300)
    return alert["id"]


def test_eval_counts_true_and_false_positive_alerts_it_would_repeat(team):
    c, analyst, admin = team.client, team.analyst, team.admin1
    tool = unique("fb")
    ids = [str(ULID()) for _ in range(4)]
    ingest(
        c,
        admin,
        [
            tool_call(tool, event_id=ids[0]),
            tool_call(tool, event_id=ids[1]),
            tool_call("benign-" + tool, event_id=ids[2]),
            tool_call("benign-" + tool, event_id=ids[3]),
        ],
    )
    tp_hit = _alert(team, [ids[2], ids[0]], unique("a"))  # one of its events matches
    fp_hit = _alert(team, [ids[1]], unique("b"))
    tp_miss = _alert(team, [ids[2]], unique("c"))
    fp_miss = _alert(team, [ids[3]], unique("d"))
    for alert_id, verdict in ((tp_hit, "tp"), (fp_hit, "tp"), (fp_hit, "fp"), (tp_miss, "tp"), (fp_miss, "fp")):
        r = c.post(f"/api/v1/alerts/{alert_id}/feedback", json={"feedback": verdict}, headers=admin)
        assert r.status_code == 204, r.text
    p = create(c, analyst, proposal(tool))
    fb = c.post(f"{ROUTE}/{p['id']}/eval", headers=analyst).json()["result"]["feedback"]
    # fp_hit's newest verdict is fp: it counts as a false positive only
    assert fb["tp_alerts_hit"] == 1 and fb["tp_alert_ids_hit"] == [tp_hit]
    assert fb["fp_alerts_hit"] == 1 and fb["fp_alert_ids_hit"] == [fp_hit]
    assert fb["tp_alerts"] >= 2 and fb["fp_alerts"] >= 2


def test_baseline_and_deltas_against_the_live_rule_set(team):
    c, analyst = team.client, team.analyst
    tool = unique("delta")
    ingest(c, team.admin1, [tool_call(tool, "d1"), tool_call(tool, "d2")])
    assert c.post(f"{ROUTE}/baseline", headers=team.viewer).status_code == 403  # rules:write
    made = c.post(f"{ROUTE}/baseline", headers=analyst)
    assert made.status_code == 201, made.text
    base = made.json()
    assert c.get(f"{ROUTE}/baseline", headers=team.viewer).json() == base
    window = base["metrics"]["window"]
    assert window["events_read"] >= 2 and "events_hit" in window and base["metrics"]["rules"] >= 1

    p = create(c, analyst, proposal(tool))
    deltas = c.post(f"{ROUTE}/{p['id']}/eval", headers=analyst).json()["result"]["deltas"]
    assert deltas["baseline_id"] == base["id"]
    # no live rule matches the watched tool: both events are new
    assert deltas["events_hit"] == {
        "baseline": window["events_hit"],
        "added": 2,
        "with_proposal": window["events_hit"] + 2,
        "unchecked": 0,
    }

    # once a rule on the same tool is live, a second proposal of it adds nothing
    live = c.post("/api/v1/sigma/rules", json={"yaml": sigma(tool, title="already live")}, headers=team.admin1)
    assert live.status_code == 201, live.text
    q = create(c, analyst, proposal(tool))
    again = c.post(f"{ROUTE}/{q['id']}/eval", headers=analyst).json()["result"]
    assert again["window"]["events_hit"] == 2 and again["deltas"]["events_hit"]["added"] == 0


def test_eval_keeps_outside_metrics_without_letting_them_decide(team):
    c, analyst = team.client, team.analyst
    p = create(c, analyst, proposal(unique("ext"), test_cases={"must_match": [tool_call("nothing-like-it")]}))
    body = {"external": {"source": "scripts/run_evals.py", "metrics": {"precision": 0.99, "recall_delta": 0.2}}}
    ev = c.post(f"{ROUTE}/{p['id']}/eval", json=body, headers=analyst).json()
    assert ev["external"] == body["external"]
    assert ev["passed"] is False  # its must_match case does not match, whatever the outside numbers say
