"""An approved request whose held action had not started when its node died (killed between
the decision's commit and the start of the run) is not lost: the decision records the action
as due, and a server starting on the store, or the watch of a node still running, starts it,
once, whatever the number of nodes (a conditional update claims it). On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from agentwatch.soc.approvals import decisions, store
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.store.engine import make_engine
from tests.approvals.helpers import APPROVALS, PASSWORD, People, people_server, settings
from tests.approvals.test_decision_races import race
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, calls, make_alert, receiver, unique
from tests.support.server import RunningServer, run_server

THREADS = 8


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("127.0.0.1") as r:
        yield r


def held(team: People, url: str, query: str = "") -> tuple[dict[str, Any], dict[str, Any], str]:
    """A playbook requiring approval, run by the analyst: (the playbook, the held run, the hook's path)."""
    path = unique()
    steps = [
        {"action": "notify_webhook", "params": {"url": f"{url}/{path}{query}", "message": "{alert_title}"}},
        {"action": "set_alert_status", "params": {"status": "closed"}},
    ]
    body = {"name": f"due-{unique()}", "steps": steps, "requires_approval": True}
    r = team.client.post(PLAYBOOKS, json=body, headers=team["admin"])
    assert r.status_code == 201, r.text
    pb = r.json()
    aid = make_alert(team.server.aw.engine)
    r = team.client.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid}, headers=team["analyst"])
    assert r.status_code == 200 and r.json()["status"] == "awaiting_approval", r.text
    return pb, r.json(), path


def decided_then_died(engine: Engine, approval_id: str) -> dict[str, Any]:
    """The decision's own transaction, taken a while ago by a node that died before it started
    the held run: the store as that node left it."""
    return store.decide(
        engine,
        approval_id,
        approve=True,
        who="user:gone-node-admin",
        person="user:gone-node-admin",
        comment=None,
        now=time.time() - decisions.RELEASE_GRACE_S - 30,
    )


def login(c: httpx.Client, email: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def request_of(c: httpx.Client, headers: dict[str, str], approval_id: str) -> dict[str, Any]:
    r = c.get(f"{APPROVALS}/{approval_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def runs_of(c: httpx.Client, headers: dict[str, str], pid: str) -> list[dict[str, Any]]:
    r = c.get(f"{PLAYBOOKS}/{pid}/runs", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def check_ran_once(
    c: httpx.Client, headers: dict[str, str], pb: dict, run: dict, got: list, path: str, wait_s: float = 15
) -> None:
    done = wait_for(lambda: request_of(c, headers, run["approval_id"])["status"] != "approved", wait_s, 0.3)
    assert done
    final = request_of(c, headers, run["approval_id"])
    assert final["status"] == "executed", (final["outcome"], runs_of(c, headers, pb["id"]))
    assert final["outcome"] == {"run_id": run["id"], "run_status": "succeeded"}
    (ran,) = runs_of(c, headers, pb["id"])
    assert (ran["id"], ran["status"]) == (run["id"], "succeeded")
    time.sleep(2.5)  # two more watch passes (approvals.expiry_interval_s is 1): nothing starts it again
    assert calls(got, path) == 1
    assert [r["status"] for r in runs_of(c, headers, pb["id"])] == ["succeeded"]


def test_a_decision_cut_off_before_its_run_is_run_once_at_the_next_start(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    with people_server(tmp_path, database_url) as team:
        pb, run, path = held(team, url)
        admin = team.people["admin"].email
    engine = make_engine(database_url)
    try:
        left = decided_then_died(engine, run["approval_id"])
    finally:
        engine.dispose()
    assert (left["status"], left["outcome"]) == ("approved", None) and calls(got, path) == 0
    with run_server(settings(tmp_path, database_url)) as s, s.client() as c:
        check_ran_once(c, login(c, admin), pb, run, got, path)


def test_a_running_node_takes_over_the_due_action_of_a_node_that_died(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    with people_server(tmp_path, database_url) as team:
        pb, run, path = held(team, url)
        decided_then_died(team.server.aw.engine, run["approval_id"])  # on a node sharing the store
        check_ran_once(team.client, team["admin"], pb, run, got, path)


def test_a_stop_lets_a_recovered_run_end(tmp_path: Path, database_url: str, hook: tuple[str, list]) -> None:
    url, got = hook
    with people_server(tmp_path, database_url) as team:
        pb, run, path = held(team, url, "?delay=2")
        decided_then_died(team.server.aw.engine, run["approval_id"])
        wait_for(lambda: calls(got, path) == 1)  # recovered and under way: now the server stops
    engine = make_engine(database_url)
    try:
        final = store.get(engine, run["approval_id"])
        (ran,) = playbooks.list_runs(engine, pb["id"], 0, 10)[0]
    finally:
        engine.dispose()
    assert final is not None and (final["status"], final["outcome"]["run_status"]) == ("executed", "succeeded")
    assert (ran["id"], ran["status"]) == (run["id"], "succeeded") and calls(got, path) == 1


def test_a_fresh_decision_is_left_to_its_decider(tmp_path: Path, database_url: str, hook: tuple[str, list]) -> None:
    """Within ``RELEASE_GRACE_S`` of the decision the decider is starting the run itself: the
    watch does not take it from under it (the decider's answer shows the outcome)."""
    url, got = hook
    with people_server(tmp_path, database_url) as team:
        pb, run, path = held(team, url)
        store.decide(
            team.server.aw.engine,
            run["approval_id"],
            approve=True,
            who="user:busy-decider",
            person="user:busy-decider",
            comment=None,
            now=time.time(),
        )
        time.sleep(2.5)  # two watch passes
        assert request_of(team.client, team["admin"], run["approval_id"])["status"] == "approved"
        assert runs_of(team.client, team["admin"], pb["id"])[0]["status"] == "awaiting_approval"
        assert calls(got, path) == 0


def test_two_servers_starting_at_once_start_a_due_action_once(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    with people_server(tmp_path / "first", database_url) as team:
        pb, run, path = held(team, url)
        admin = team.people["admin"].email
    engine = make_engine(database_url)
    try:
        decided_then_died(engine, run["approval_id"])
    finally:
        engine.dispose()
    with ExitStack() as stack:
        gate = threading.Barrier(2)
        servers: list[RunningServer] = []
        errors: list[BaseException] = []

        def start(name: str) -> None:
            try:
                gate.wait()
                servers.append(stack.enter_context(run_server(settings(tmp_path / name, database_url))))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in ("node-a", "node-b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(servers) == 2, errors
        with servers[0].client() as c:
            check_ran_once(c, login(c, admin), pb, run, got, path)


def _approved_holding(engine: Engine, decided_at: float) -> str:
    row = store.new_row(
        kind="playbook_run",
        subject="alert x",
        reason="needs approval",
        action="run playbook p on alert x",
        gated={"type": "playbook_run", "run_id": "r"},
        requested_by="trigger:alert",
        requester="system:playbook-trigger",
        ttl_s=86_400,
        now=decided_at - 1,
    )
    made = store.create(engine, row, max_pending=1000, max_per_requester=1000)
    store.decide(engine, made["id"], approve=True, who="user:d", person="user:d", comment=None, now=decided_at)
    return made["id"]


def test_of_concurrent_claims_of_a_due_action_exactly_one_wins(engine: Engine) -> None:
    for _ in range(3):
        rid = _approved_holding(engine, time.time() - 60)
        results = race([partial(store.claim_alone, engine, rid) for _ in range(THREADS)])
        assert sorted(results, key=str) == [False] * (THREADS - 1) + [True], results
        assert rid not in [d["id"] for d in store.due(engine, time.time())]


def test_due_lists_the_approved_actions_not_started_decided_before_the_bound(engine: Engine) -> None:
    now = time.time()
    old = _approved_holding(engine, now - 60)
    fresh = _approved_holding(engine, now)
    plain = store.create(
        engine,
        store.new_row(
            kind="config_change",
            subject="s",
            reason="r",
            action="a",
            gated=None,
            requested_by="user:a",
            requester="user:a",
            ttl_s=3600,
        ),
        max_pending=1000,
        max_per_requester=1000,
    )
    store.decide(engine, plain["id"], approve=True, who="user:d", person="user:d", comment=None, now=now)
    listed = [d["id"] for d in store.due(engine, now - 10)]
    assert old in listed and fresh not in listed and plain["id"] not in listed
    assert fresh in [d["id"] for d in store.due(engine, now + 1)]
