"""Approvals with authentication off (``--no-auth``, loopback only), on both stores: every caller
is the one local operator, so the four-eyes rule (another person decides) cannot be met. A
request still waits for an explicit decision, and the local operator may take it; the decision's
audit entry says the four-eyes rule was not enforced and why."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.approvals.helpers import APPROVALS
from tests.playbooks.helpers import PLAYBOOKS, make_alert, receiver, server, unique
from tests.support.server import RunningServer

NOT_ENFORCED = "not enforced: authentication is off, every caller is the one local operator"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with server(tmp_path_factory.mktemp("data"), module_database_url) as s:
        yield s


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver() as r:
        yield r


def test_a_held_run_waits_and_the_local_operator_may_approve_it(srv: RunningServer, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    step = {"action": "notify_webhook", "params": {"url": f"{url}/{path}", "message": "{alert_title}"}}
    with srv.client() as c:
        made = c.post(PLAYBOOKS, json={"name": f"off-{path}", "steps": [step], "requires_approval": True})
        assert made.status_code == 201, made.text
        aid = make_alert(srv.aw.engine)
        run = c.post(f"{PLAYBOOKS}/{made.json()['id']}/execute", json={"alert_id": aid}).json()
        assert run["status"] == "awaiting_approval" and not [g for g in got if g["path"] == f"/{path}"]
        done = c.post(f"{APPROVALS}/{run['approval_id']}:approve")
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "executed" and done.json()["decided_by"] == "local:local"
        assert len([g for g in got if g["path"] == f"/{path}"]) == 1
        assert c.post(f"{APPROVALS}/{run['approval_id']}:reject").status_code == 409  # decided once


def test_a_request_is_decided_by_the_local_operator_and_the_audit_says_four_eyes_was_off(srv: RunningServer) -> None:
    body = {"kind": "config_change", "subject": "outputs", "action": "add a Slack output", "reason": "on-call"}
    with srv.client() as c:
        made = c.post(APPROVALS, json=body)
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        r = c.post(f"{APPROVALS}/{rid}:reject", json={"comment": "not now"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "rejected"
        entries = c.get("/api/v1/audit", params={"action": "approval.*", "limit": 1000}).json()["entries"]
        (entry,) = [e for e in entries if e["target"] == f"approval:{rid}" and e["action"] == "approval.reject"]
        assert entry["details"]["four_eyes"] == NOT_ENFORCED
