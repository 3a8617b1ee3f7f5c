"""Each playbook action changes what it says (read back through the real API), steps run in
order, a failing step stops the run unless it continues on error, and a dry run changes
nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.playbooks.helpers import alert, create, execute, make_alert, receiver, server, unique
from tests.support.server import RunningServer

MISSING_CASE = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server(tmp_path_factory.mktemp("data"), module_database_url) as s:
        yield s


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver() as r:
        yield r


def test_alert_actions_set_the_status_and_the_assignee(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(
            c,
            [
                {"action": "set_alert_status", "params": {"status": "acknowledged"}},
                {"action": "assign_alert", "params": {"assignee": "tier2@example.com"}},
            ],
        )
        run = execute(c, pb["id"], aid)
        assert run["status"] == "succeeded" and run["trigger"] == "manual" and not run["dry_run"]
        assert [s["status"] for s in run["steps"]] == ["succeeded", "succeeded"]
        assert run["steps"][0]["output"]["status"] == {"from": "open", "to": "acknowledged"}
        doc = alert(c, aid)
        assert (doc["status"], doc["assignee"]) == ("acknowledged", "tier2@example.com")


def test_a_new_case_holds_the_alert_and_takes_the_comment(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine, severity=8, title="Odd tool use")
    with srv.client() as c:
        pb = create(
            c,
            [
                {"action": "add_alert_to_case", "params": {"tags": ["auto"]}},
                {"action": "add_case_comment", "params": {"body": "Opened for {alert_id} ({rule_id})"}},
            ],
        )
        run = execute(c, pb["id"], aid)
        assert run["status"] == "succeeded", run
        case_id = run["steps"][0]["output"]["case_id"]
        case = c.get(f"/api/v1/cases/{case_id}").json()
        assert case["alert_ids"] == [aid]
        assert (case["title"], case["severity"], case["tags"]) == ("Alert: Odd tool use", 8, ["auto"])
        rule = alert(c, aid)["rule_id"]
        assert [(m["body"], m["author"]) for m in case["comments"]] == [
            (f"Opened for {aid} ({rule})", f"playbook:{pb['id']}")
        ]


def test_an_existing_case_gets_the_alert_added_once(srv: RunningServer) -> None:
    first, second = make_alert(srv.aw.engine), make_alert(srv.aw.engine)
    with srv.client() as c:
        case = c.post("/api/v1/cases", json={"title": "Ongoing", "alert_ids": [first]}).json()
        pb = create(
            c,
            [
                {"action": "add_alert_to_case", "params": {"case_id": case["id"]}},
                {"action": "add_case_comment", "params": {"body": "linked"}},
            ],
        )
        assert execute(c, pb["id"], second)["steps"][0]["output"] == {
            "case_id": case["id"],
            "created": False,
            "linked": True,
        }
        again = execute(c, pb["id"], second)  # already linked: nothing more to link
        assert again["steps"][0]["output"]["linked"] is False
        doc = c.get(f"/api/v1/cases/{case['id']}").json()
        assert doc["alert_ids"] == [first, second]
        assert [m["body"] for m in doc["comments"]] == ["linked", "linked"]


def test_an_entity_of_the_alert_becomes_an_indicator(srv: RunningServer) -> None:
    tag = unique()
    aid = make_alert(srv.aw.engine, host=f"C2-{tag}.Example")
    with srv.client() as c:
        pb = create(c, [{"action": "add_indicator", "params": {"severity": 8, "tags": ["from-playbook"]}}])
        run = execute(c, pb["id"], aid)
        assert run["steps"][0]["output"] == {
            "indicator": {"type": "domain", "value": f"c2-{tag}.example", "severity": 8},
            "created": True,
        }
        (ioc,) = c.get("/api/v1/intel/iocs", params={"q": tag}).json()["iocs"]
        assert (ioc["type"], ioc["value"], ioc["source"], ioc["severity"]) == (
            "domain",
            f"c2-{tag}.example",
            "playbook",
            8,
        )
        assert ioc["tags"] == ["from-playbook"] and aid in ioc["description"]
        plain = make_alert(srv.aw.engine, host="workstation")  # no dot: not an indicator
        failed = execute(c, pb["id"], plain)
        assert failed["status"] == "failed"
        assert "names no host entity usable as an indicator" in failed["steps"][0]["error"]


def test_a_webhook_step_posts_a_summary_to_the_receiver(srv: RunningServer, hook: Any) -> None:
    base, got = hook
    aid = make_alert(srv.aw.engine, severity=9, title="Exfil attempt")
    with srv.client() as c:
        name = f"notify-{unique()}"
        pb = create(
            c, [{"action": "notify_webhook", "params": {"url": f"{base}/ok", "message": "see {alert_id}"}}], name=name
        )
        run = execute(c, pb["id"], aid)
        assert run["status"] == "succeeded", run
        assert run["steps"][0]["output"]["status_code"] == 200
        sent = [g for g in got if g["json"]["alert"]["id"] == aid]
        assert len(sent) == 1 and sent[0]["type"] == "application/json"
        body = sent[0]["json"]
        assert body["message"] == f"see {aid}" and body["playbook"] == {"id": pb["id"], "name": name}
        assert (body["alert"]["title"], body["alert"]["severity"], body["run_id"]) == ("Exfil attempt", 9, run["id"])


@pytest.mark.parametrize(
    ("path", "timeout", "error"),
    [("/fail", 5, "receiver answered 500"), ("/slow", 0.5, "timed out after 0.5 s")],
)
def test_a_webhook_that_fails_or_hangs_fails_its_step(
    srv: RunningServer, hook: Any, path: str, timeout: float, error: str
) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [{"action": "notify_webhook", "params": {"url": hook[0] + path, "timeout_s": timeout}}])
        run = execute(c, pb["id"], aid)
        assert run["status"] == "failed" and run["steps"][0]["error"].endswith(error)


def test_a_large_webhook_answer_is_read_only_up_to_the_cap(srv: RunningServer, hook: Any) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [{"action": "notify_webhook", "params": {"url": hook[0] + "/big"}}])
        out = execute(c, pb["id"], aid)["steps"][0]["output"]
        assert (out["response_bytes"], out["truncated"]) == (64 * 1024, True)


def test_a_failing_step_stops_the_run_unless_it_continues_on_error(srv: RunningServer) -> None:
    steps = [
        {"action": "set_alert_status", "params": {"status": "closed"}},
        {"action": "add_alert_to_case", "params": {"case_id": MISSING_CASE}},
        {"action": "assign_alert", "params": {"assignee": "night-shift"}},
    ]
    stopped, went_on = make_alert(srv.aw.engine), make_alert(srv.aw.engine)
    with srv.client() as c:
        run = execute(c, create(c, steps)["id"], stopped)
        assert run["status"] == "failed"
        assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "skipped"]
        assert run["steps"][1]["error"] == f"case {MISSING_CASE} does not exist"
        assert (alert(c, stopped)["status"], alert(c, stopped)["assignee"]) == ("closed", None)
        steps[1]["continue_on_error"] = True
        pb = create(c, steps)
        run = execute(c, pb["id"], went_on)
        assert run["status"] == "completed_with_errors"
        assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "succeeded"]
        assert alert(c, went_on)["assignee"] == "night-shift"
        history = c.get(f"/api/v1/playbooks/{pb['id']}/runs").json()
        assert history["meta"]["total"] == 1 and history["runs"][0]["id"] == run["id"]
        assert history["runs"][0]["started_by"] == "local:local"  # authentication is off in this module


ALL_STEPS = [
    {"action": "set_alert_status", "params": {"status": "closed"}},
    {"action": "assign_alert", "params": {"assignee": "someone"}},
    {"action": "add_alert_to_case", "params": {}},
    {"action": "add_case_comment", "params": {"body": "hello"}},
    {"action": "add_indicator", "params": {}},
]


def _unchanged(c: Any, aid: str, host: str, got: list[dict[str, Any]]) -> None:
    doc = alert(c, aid)
    assert (doc["status"], doc["assignee"]) == ("open", None)
    assert c.get("/api/v1/cases", params={"alert_id": aid}).json()["meta"]["total"] == 0
    assert c.get("/api/v1/intel/iocs", params={"q": host}).json()["total"] == 0
    assert not [g for g in got if g["json"]["alert"]["id"] == aid]


def test_a_dry_run_says_what_would_change_and_changes_nothing(srv: RunningServer, hook: Any) -> None:
    base, got = hook
    host = f"dry-{unique()}.example"
    aid = make_alert(srv.aw.engine, host=host)
    steps = [*ALL_STEPS, {"action": "notify_webhook", "params": {"url": f"{base}/ok"}}]
    with srv.client() as c:
        pb = create(c, steps)
        run = execute(c, pb["id"], aid, dry_run=True)
        assert run["dry_run"] is True and run["status"] == "succeeded", run
        out = [s["output"] for s in run["steps"]]
        assert out[0]["status"] == {"from": "open", "to": "closed"} and out[0]["changes"] is True
        assert out[1]["assignee"] == {"from": None, "to": "someone"}
        assert out[2]["created"] is True and out[3]["case_id"] is None
        assert out[4] == {"indicator": {"type": "domain", "value": host, "severity": 7}, "created": True}
        assert out[5]["sent"] is False and out[5]["would_send"]["alert"]["id"] == aid
        _unchanged(c, aid, host, got)
        r = c.post("/api/v1/actions/dry-run", json={"alert_id": aid, "steps": steps})
        assert r.status_code == 200 and [s["status"] for s in r.json()["steps"]] == ["succeeded"] * 6
        r = c.post("/api/v1/actions/dry-run", json={"alert_id": aid, "playbook_id": pb["id"]})
        assert r.status_code == 200 and r.json()["steps"][1]["output"]["assignee"]["to"] == "someone"
        r = c.post(
            "/api/v1/actions/dry-run",
            json={"alert_id": aid, "action": "set_alert_status", "params": {"status": "acknowledged"}},
        )
        assert r.json()["steps"][0]["output"]["status"] == {"from": "open", "to": "acknowledged"}
        _unchanged(c, aid, host, got)
        assert c.get(f"/api/v1/playbooks/{pb['id']}/runs").json()["meta"]["total"] == 1  # the execute dry run only
