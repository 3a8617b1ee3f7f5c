"""Approving a held playbook run waits at most ``playbooks.execute_wait_s`` for it, as
``POST .../execute`` does: a quick run is answered ``executed`` with its outcome; a longer one is
answered as the request stands (``approved``, outcome ``run_status: running``) and goes on as a
task of the server, which records the request's final status and its audit entry when the run
ends. An approver going away does not stop the run; a stop past the drain ends it
``interrupted``, the request ``failed`` saying so. On SQLite and PostgreSQL, with a webhook
receiver on 127.0.0.1 that answers late."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentwatch.config import Settings
from agentwatch.soc.approvals import decisions
from agentwatch.soc.approvals import store as approvals
from agentwatch.soc.audit import AuditLog
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.store.engine import make_engine
from tests.approvals.helpers import APPROVALS, People, decide
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, calls, make_alert, receiver, unique
from tests.support.server import run_server

WAIT_S = 0.5
SLOW_S = 3.0


def settings(data_dir: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False},
        detection={"atr_bundled": False, "pack": False},
        playbooks={"allow_private_urls": True, "refresh_s": 0.5, "execute_wait_s": WAIT_S},
        approvals={"expiry_interval_s": 1},
        sla={"enabled": False},
    )


@contextmanager
def team_on(data_dir: Path, database_url: str) -> Iterator[People]:
    with run_server(settings(data_dir, database_url)) as s, s.client() as c:
        people = People(s, c)
        people.person("admin", "admin")
        people.person("analyst", "analyst")
        yield people


@pytest.fixture(scope="module")
def team(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    with team_on(tmp_path_factory.mktemp("data"), module_database_url) as p:
        yield p


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("127.0.0.1") as r:
        yield r


def slow_steps(url: str, path: str, delay: float = SLOW_S) -> list[dict[str, Any]]:
    return [
        {"action": "notify_webhook", "params": {"url": f"{url}/{path}?delay={delay}", "timeout_s": 30}},
        {"action": "set_alert_status", "params": {"status": "closed"}},
    ]


def held(team: People, steps: list[dict[str, Any]]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A playbook requiring approval, run by the analyst: (the playbook, the alert id, the held run)."""
    c = team.client
    r = c.post(
        PLAYBOOKS, json={"name": f"wait-{unique()}", "steps": steps, "requires_approval": True}, headers=team["admin"]
    )
    assert r.status_code == 201, r.text
    pb = r.json()
    aid = make_alert(team.server.aw.engine)
    r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid}, headers=team["analyst"])
    assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", r.text
    return pb, aid, r.json()


def request_of(team: People, approval_id: str) -> dict[str, Any]:
    r = team.client.get(f"{APPROVALS}/{approval_id}", headers=team["admin"])
    assert r.status_code == 200, r.text
    return r.json()


def runs_of(team: People, pid: str) -> list[dict[str, Any]]:
    r = team.client.get(f"{PLAYBOOKS}/{pid}/runs", headers=team["admin"])
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def audited(team: People, approval_id: str) -> list[str]:
    r = team.client.get("/api/v1/audit", params={"action": "approval.*", "limit": 1000}, headers=team["admin"])
    assert r.status_code == 200, r.text
    return sorted(e["action"] for e in r.json()["entries"] if e["target"] == f"approval:{approval_id}")


def test_a_quick_released_run_is_answered_with_its_outcome(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    pb, aid, run = held(team, slow_steps(url, path, delay=0))
    r = decide(team.client, team["admin"], run["approval_id"], "approve")
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["outcome"]) == ("executed", {"run_id": run["id"], "run_status": "succeeded"})
    assert audited(team, done["id"]) == ["approval.approve", "approval.executed"]
    assert calls(got, path) == 1


def test_a_slow_released_run_is_answered_at_the_wait_and_ends_executed(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    pb, aid, run = held(team, slow_steps(url, path))
    started = time.monotonic()
    r = decide(team.client, team["admin"], run["approval_id"], "approve")
    took = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert took < SLOW_S - 1, took  # answered at the wait, not at the end of the run
    now = r.json()
    assert (now["id"], now["status"]) == (run["approval_id"], "approved")
    assert now["outcome"] == {"run_id": run["id"], "run_status": "running"}
    assert request_of(team, run["approval_id"])["outcome"] == now["outcome"]
    (going,) = runs_of(team, pb["id"])
    assert (going["id"], going["status"]) == (run["id"], "running")
    assert audited(team, now["id"]) == ["approval.approve"]
    done = wait_for(lambda: request_of(team, run["approval_id"])["status"] != "approved", 15, 0.2)
    assert done
    final = request_of(team, run["approval_id"])
    assert (final["status"], final["outcome"]) == ("executed", {"run_id": run["id"], "run_status": "succeeded"})
    (ran,) = runs_of(team, pb["id"])
    assert (ran["status"], [s["status"] for s in ran["steps"]]) == ("succeeded", ["succeeded", "succeeded"])
    assert audited(team, now["id"]) == ["approval.approve", "approval.executed"]
    assert calls(got, path) == 1
    assert team.client.get(f"/api/v1/alerts/{aid}", headers=team["admin"]).json()["status"] == "closed"
    # decided once: a second approval is refused, and the run is not started again
    assert decide(team.client, team["admin"], run["approval_id"], "approve").status_code == 409
    assert calls(got, path) == 1 and len(runs_of(team, pb["id"])) == 1


def test_an_approver_going_away_does_not_stop_the_run(team: People, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    pb, aid, run = held(team, slow_steps(url, path, delay=1.5) + slow_steps(url, path + "-2", delay=1.5))
    with httpx.Client(base_url=team.server.url, timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        decide(impatient, team["admin"], run["approval_id"], "approve")
    assert wait_for(lambda: request_of(team, run["approval_id"])["status"] != "approved", 20, 0.2)
    final = request_of(team, run["approval_id"])
    assert (final["status"], final["outcome"]) == ("executed", {"run_id": run["id"], "run_status": "succeeded"})
    (ran,) = runs_of(team, pb["id"])
    assert ran["status"] == "succeeded", ran
    assert calls(got, path) == 1 and calls(got, path + "-2") == 1


def test_a_stop_past_the_drain_ends_the_request_failed_interrupted(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    with team_on(tmp_path, database_url) as team:
        team.server.aw.components["playbook_runs"].drain_s = 0.5  # the shutdown's bound, short for the test
        pb, aid, run = held(team, slow_steps(url, path, delay=8))
        r = decide(team.client, team["admin"], run["approval_id"], "approve")
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
        wait_for(lambda: calls(got, path) == 1)
    engine = make_engine(database_url)
    try:
        final = approvals.get(engine, run["approval_id"])
        (ran,) = playbooks.list_runs(engine, pb["id"], 0, 10)[0]
        entries = AuditLog(engine).query(action="approval.*", limit=1000)
    finally:
        engine.dispose()
    assert final is not None and final["status"] == "failed"
    assert final["outcome"] == {"error": decisions.INTERRUPTED}
    assert (ran["id"], ran["status"]) == (run["id"], "interrupted")
    assert [s["status"] for s in ran["steps"]] == ["interrupted", "skipped"]
    mine = sorted(e["action"] for e in entries if e["target"] == f"approval:{run['approval_id']}")
    assert mine == ["approval.approve", "approval.failed"]
