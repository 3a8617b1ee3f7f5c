"""The approval gate of playbooks, on a real server with authentication on, on both stores: a
playbook (or a step) requiring approval is held when run by hand or by its trigger, runs
exactly once when approved (also when two people approve at once), never when rejected or
expired, and not at all when it changed since; dry runs are not held."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.approvals.schema import approval_requests
from tests.approvals.helpers import APPROVALS, People, decide, people_server
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, calls, make_alert, receiver, unique


@pytest.fixture(scope="module")
def team(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    with people_server(tmp_path_factory.mktemp("data"), module_database_url) as p:
        yield p


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver() as r:
        yield r


def steps(url: str, path: str) -> list[dict[str, Any]]:
    return [
        {"action": "notify_webhook", "params": {"url": f"{url}/{path}", "message": "{alert_title}"}},
        {"action": "set_alert_status", "params": {"status": "closed"}},
    ]


def playbook(team: People, body_steps: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    r = team.client.post(
        PLAYBOOKS, json={"name": f"gated-{unique()}", "steps": body_steps, **body}, headers=team["admin"]
    )
    assert r.status_code == 201, r.text
    return r.json()


def execute(team: People, who: str, pid: str, aid: str, dry_run: bool = False) -> dict[str, Any]:
    r = team.client.post(f"{PLAYBOOKS}/{pid}/execute", json={"alert_id": aid, "dry_run": dry_run}, headers=team[who])
    assert r.status_code == 200, r.text
    return r.json()


def runs(team: People, pid: str) -> list[dict[str, Any]]:
    return team.client.get(f"{PLAYBOOKS}/{pid}/runs", headers=team["admin"]).json()["runs"]


def alert_status(team: People, aid: str) -> str:
    return team.client.get(f"/api/v1/alerts/{aid}", headers=team["admin"]).json()["status"]


def held(team: People, hook: tuple[str, list], **body: Any) -> tuple[dict, str, dict, str]:
    """A gated playbook run by the analyst: (playbook, alert id, the held run, the hook's path)."""
    path = unique()
    pb = playbook(team, steps(hook[0], path), requires_approval=True, **body)
    aid = make_alert(team.server.aw.engine)
    run = execute(team, "analyst", pb["id"], aid)
    return pb, aid, run, path


def test_a_held_run_waits_and_runs_exactly_once_when_approved(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    pb, aid, run, path = held(team, hook)
    assert pb["requires_approval"] is True
    assert (run["status"], run["steps"], run["finished_at"]) == ("awaiting_approval", [], None)
    request = team.client.get(f"{APPROVALS}/{run['approval_id']}", headers=team["admin"]).json()
    assert (request["kind"], request["status"]) == ("playbook_run", "pending")
    gated = request["gated_action"]
    assert (gated["playbook_id"], gated["alert_id"], gated["run_id"]) == (pb["id"], aid, run["id"])
    assert [s["action"] for s in gated["steps"]] == ["notify_webhook", "set_alert_status"]
    assert "url" not in str(gated)  # the approver sees what runs, not the hook's secret address
    assert calls(got, path) == 0 and alert_status(team, aid) == "open"
    r = decide(team.client, team["admin"], run["approval_id"], "approve")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "executed"
    assert done["outcome"] == {"run_id": run["id"], "run_status": "succeeded"}
    assert calls(got, path) == 1 and alert_status(team, aid) == "closed"
    (finished,) = runs(team, pb["id"])
    assert (finished["id"], finished["status"], finished["approval_id"]) == (run["id"], "succeeded", done["id"])
    assert decide(team.client, team["admin2"], run["approval_id"], "approve").status_code == 409
    assert calls(got, path) == 1 and len(runs(team, pb["id"])) == 1


def test_a_rejected_run_never_runs(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    pb, aid, run, path = held(team, hook)
    r = decide(team.client, team["admin"], run["approval_id"], "reject", comment="not on a Friday")
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    (cancelled,) = runs(team, pb["id"])
    assert (cancelled["status"], cancelled["steps"]) == ("cancelled", [])
    assert decide(team.client, team["admin2"], run["approval_id"], "approve").status_code == 409
    assert calls(got, path) == 0 and alert_status(team, aid) == "open"


def test_two_people_approving_at_once_run_it_once(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    pb, aid, run, path = held(team, hook)
    gate = threading.Barrier(2)
    answers: list[int] = []

    def approve(who: str) -> None:
        with httpx.Client(base_url=team.server.url, timeout=30) as c:
            gate.wait()
            answers.append(decide(c, team[who], run["approval_id"], "approve").status_code)

    threads = [threading.Thread(target=approve, args=(w,)) for w in ("admin", "admin2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [200, 409]
    assert calls(got, path) == 1
    assert [r["status"] for r in runs(team, pb["id"])] == ["succeeded"]


def test_an_expired_request_cancels_its_run(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    pb, aid, run, path = held(team, hook)
    with team.server.aw.engine.begin() as conn:
        conn.execute(
            update(approval_requests)
            .where(approval_requests.c.id == run["approval_id"])
            .values(expires_at=time.time() - 1)
        )
    wait_for(lambda: runs(team, pb["id"])[0]["status"] == "cancelled")
    assert decide(team.client, team["admin"], run["approval_id"], "approve").status_code == 409
    assert calls(got, path) == 0 and alert_status(team, aid) == "open"


def test_a_step_requiring_approval_holds_the_whole_run_and_the_requester_cannot_approve(
    team: People, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    gated_steps = steps(url, path)
    gated_steps[1]["requires_approval"] = True
    pb = playbook(team, gated_steps)
    assert pb["requires_approval"] is False and pb["steps"][1]["requires_approval"] is True
    assert "requires_approval" not in pb["steps"][0]
    aid = make_alert(team.server.aw.engine)
    run = execute(team, "admin", pb["id"], aid)
    assert run["status"] == "awaiting_approval" and calls(got, path) == 0
    r = decide(team.client, team["admin"], run["approval_id"], "approve")
    assert r.status_code == 403 and r.json()["error"]["message"].startswith("four-eyes rule:")
    assert decide(team.client, team["admin2"], run["approval_id"], "approve").json()["status"] == "executed"
    assert calls(got, path) == 1


def test_a_dry_run_is_not_held(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    pb = playbook(team, steps(url, path), requires_approval=True)
    aid = make_alert(team.server.aw.engine)
    run = execute(team, "analyst", pb["id"], aid, dry_run=True)
    assert (run["status"], run["dry_run"], run["approval_id"]) == ("succeeded", True, None)
    assert calls(got, path) == 0
    params = {"kind": "playbook_run", "limit": 1000}
    asked = team.client.get(APPROVALS, params=params, headers=team["admin"]).json()["approvals"]
    assert aid not in [a["gated_action"]["alert_id"] for a in asked]


def test_a_playbook_changed_since_the_request_is_not_run(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    pb, aid, run, path = held(team, hook)
    changed = {"name": pb["name"], "steps": steps(url, path + "-other"), "requires_approval": True}
    assert team.client.put(f"{PLAYBOOKS}/{pb['id']}", json=changed, headers=team["admin"]).status_code == 200
    done = decide(team.client, team["admin"], run["approval_id"], "approve").json()
    assert done["status"] == "failed" and done["outcome"]["error"].startswith("playbook: changed since")
    assert runs(team, pb["id"])[0]["status"] == "cancelled"
    assert calls(got, path) == 0 and calls(got, path + "-other") == 0


def test_an_automatic_run_is_held_too_and_runs_once_approved(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    path, tag = unique(), unique()
    trigger = {"type": "alert", "min_severity": 9, "tags": [tag]}
    pb = playbook(team, steps(url, path), requires_approval=True, trigger=trigger)
    aw = team.server.aw
    trig = aw.components["playbooks"]
    loop = trig._tasks[0].get_loop()
    asyncio.run_coroutine_threadsafe(trig.reload(), loop).result(10)
    event = Event(body={}, event_id=f"gate-{tag}", event_type="ai.request", ts=1000.0, received_at=1000.0)
    finding = Finding("atr", f"gate-{tag}", "Gated", 9, [event], alert_type="atr", dedup_key=tag, tags=[tag])
    asyncio.run_coroutine_threadsafe(aw.alerts.record([finding]), loop).result(10)
    (run,) = wait_for(lambda: runs(team, pb["id"]))
    assert (run["status"], run["trigger"], run["started_by"]) == ("awaiting_approval", "automatic", "trigger:alert")
    request = team.client.get(f"{APPROVALS}/{run['approval_id']}", headers=team["admin"]).json()
    assert request["requested_by"] == "trigger:alert"
    assert calls(got, path) == 0
    done = decide(team.client, team["admin"], run["approval_id"], "approve").json()
    assert done["status"] == "executed" and calls(got, path) == 1
    assert [r["status"] for r in runs(team, pb["id"])] == ["succeeded"]


def test_runner_execute_has_no_default_person() -> None:
    """A caller that leaves ``person`` out must not compile to "the person is whoever started it"."""
    import inspect

    from agentwatch.soc.playbooks import runner

    person = inspect.signature(runner.execute).parameters["person"]
    assert person.kind is inspect.Parameter.KEYWORD_ONLY and person.default is inspect.Parameter.empty


def test_an_automatic_run_is_asked_for_by_the_system_and_any_admin_may_decide(
    team: People, hook: tuple[str, list]
) -> None:
    from sqlalchemy import select

    from agentwatch.soc.playbooks.trigger import SYSTEM_PERSON

    url, got = hook
    path, tag = unique(), unique()
    trigger = {"type": "alert", "min_severity": 9, "tags": [tag]}
    pb = playbook(team, steps(url, path), requires_approval=True, trigger=trigger)
    aw = team.server.aw
    trig = aw.components["playbooks"]
    loop = trig._tasks[0].get_loop()
    asyncio.run_coroutine_threadsafe(trig.reload(), loop).result(10)
    event = Event(body={}, event_id=f"sys-{tag}", event_type="ai.request", ts=1000.0, received_at=1000.0)
    finding = Finding("atr", f"sys-{tag}", "Gated", 9, [event], alert_type="atr", dedup_key=tag, tags=[tag])
    asyncio.run_coroutine_threadsafe(aw.alerts.record([finding]), loop).result(10)
    (run,) = wait_for(lambda: runs(team, pb["id"]))
    with aw.engine.connect() as conn:
        requester = conn.execute(
            select(approval_requests.c.requester).where(approval_requests.c.id == run["approval_id"])
        ).scalar_one()
    assert requester == SYSTEM_PERSON == "system:playbook-trigger"
    done = decide(team.client, team["admin"], run["approval_id"], "approve").json()
    assert done["status"] == "executed" and calls(got, path) == 1
