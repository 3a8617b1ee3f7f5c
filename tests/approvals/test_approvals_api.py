"""``/api/v1/approvals`` on a real server with authentication on, on SQLite and PostgreSQL:
requests created, listed, read, approved and rejected; the four-eyes rule; the permissions;
bad input refused with a 4xx naming the field and the rule; every decision in the audit log;
expiry: a request left undecided past its ``expires_at`` is marked expired by the expiry watch
(every second here) and can no longer be decided. A request's expiry is its own
``expires_in_s`` or ``approvals.default_ttl_s``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from agentwatch.api.permissions import PERMISSIONS
from agentwatch.events.model import parse_ts
from agentwatch.soc.approvals.schema import approval_requests
from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.approvals.helpers import APPROVALS, People, ask, decide, people_server
from tests.detect.helpers import wait_for

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def team(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    with people_server(tmp_path_factory.mktemp("data"), module_database_url) as p:
        yield p


def test_deciding_is_an_admin_permission_and_analysts_may_ask() -> None:
    assert {"approvals:request", "approvals:decide"} <= set(PERMISSIONS)
    assert "approvals:request" in BUILTIN_ROLES["analyst"][1]
    assert "approvals:decide" not in BUILTIN_ROLES["analyst"][1]
    assert not {"approvals:request", "approvals:decide"} & set(BUILTIN_ROLES["viewer"][1])


def test_a_request_is_created_read_listed_and_approved_by_another_person(team: People) -> None:
    c = team.client
    made = ask(c, team["analyst"], expires_in_s=3600)
    assert made["status"] == "pending" and made["kind"] == "response_action"
    assert made["subject"] == "host build-7" and made["gated_action"] is None
    assert made["requested_by"].startswith("user:") and made["decided_by"] is None
    assert c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json() == made
    pending = c.get(APPROVALS, params={"status": "pending", "limit": 1000}, headers=team["admin"]).json()
    assert made["id"] in [a["id"] for a in pending["approvals"]]
    r = decide(c, team["admin"], made["id"], "approve", comment="isolate it, then reimage")
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["status"], done["comment"], done["outcome"]) == ("approved", "isolate it, then reimage", None)
    assert done["decided_by"].startswith("user:") and done["decided_by"] != made["requested_by"]
    assert done["decided_at"] is not None
    listed = c.get(APPROVALS, params={"status": "approved", "limit": 1000}, headers=team["admin"]).json()
    assert made["id"] in [a["id"] for a in listed["approvals"]]
    pending = c.get(APPROVALS, params={"status": "pending", "limit": 1000}, headers=team["admin"]).json()
    assert made["id"] not in [a["id"] for a in pending["approvals"]]


def test_a_rejected_request_stays_rejected_and_is_decided_once(team: People) -> None:
    c = team.client
    made = ask(c, team["analyst"], kind="access_grant")
    r = decide(c, team["admin"], made["id"], "reject")
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    again = decide(c, team["admin2"], made["id"], "approve")
    assert again.status_code == 409
    assert again.json()["error"]["message"].startswith("status: the request is rejected already")
    assert c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json()["status"] == "rejected"


def test_the_requester_cannot_decide_their_own_request_through_any_credential(team: People) -> None:
    c = team.client
    made = ask(c, team["admin"])
    other_key = team.key("admin", "approvals:decide")
    for headers in (team["admin"], other_key):
        for verb in ("approve", "reject"):
            r = decide(c, headers, made["id"], verb)
            assert r.status_code == 403, r.text
            assert r.json()["error"]["message"].startswith("four-eyes rule:")
    asked_by_key = ask(c, team.key("admin", "approvals:request"))
    r = decide(c, team["admin"], asked_by_key["id"], "approve")  # the key's owner, signed in
    assert r.status_code == 403 and "four-eyes" in r.json()["error"]["message"]
    assert c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json()["status"] == "pending"
    assert decide(c, team["admin2"], made["id"], "approve").json()["status"] == "approved"


def test_each_route_asks_for_its_permission(team: People) -> None:
    c = team.client
    made = ask(c, team["analyst"])
    assert c.get(APPROVALS).status_code == 401
    assert c.get(f"{APPROVALS}/{made['id']}").status_code == 401
    assert c.post(APPROVALS, json={}).status_code == 401
    assert decide(c, {}, made["id"], "approve").status_code == 401
    r = decide(c, team["analyst"], made["id"], "approve")
    assert r.status_code == 403 and "approvals:decide" in r.json()["error"]["message"]
    assert decide(c, team["analyst"], made["id"], "reject").status_code == 403
    reader = team.key("admin", "alerts:read")
    assert c.get(f"{APPROVALS}/{made['id']}", headers=reader).status_code == 200
    r = c.post(APPROVALS, json={"kind": "access_grant"}, headers=reader)
    assert r.status_code == 403 and "approvals:request" in r.json()["error"]["message"]
    asker = team.key("analyst", "approvals:request")
    assert c.get(APPROVALS, headers=asker).status_code == 403  # asking is not reading
    assert c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json()["status"] == "pending"


def test_every_decision_is_in_the_audit_log(team: People) -> None:
    c = team.client
    yes, no = ask(c, team["analyst"]), ask(c, team["analyst"])
    assert decide(c, team["admin"], yes["id"], "approve").status_code == 200
    assert decide(c, team["admin2"], no["id"], "reject").status_code == 200
    entries = c.get("/api/v1/audit", params={"action": "approval.*", "limit": 1000}, headers=team["admin"])
    assert entries.status_code == 200, entries.text
    by_target = {(e["target"], e["action"]): e for e in entries.json()["entries"]}
    approved = by_target[(f"approval:{yes['id']}", "approval.approve")]
    rejected = by_target[(f"approval:{no['id']}", "approval.reject")]
    assert approved["actor"]["kind"] == "user" and approved["details"]["status"] == "approved"
    assert rejected["details"] == {"kind": "response_action", "status": "rejected"}
    assert c.get("/api/v1/audit/verify", headers=team["admin"]).json()["ok"] is True


def test_keyset_paging_walks_every_request_once_newest_first(team: People) -> None:
    c = team.client
    mine = {ask(c, team["analyst"], kind="risk_acceptance")["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"kind": "risk_acceptance", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = c.get(APPROVALS, params=params, headers=team["admin"]).json()
        seen += [a["id"] for a in page["approvals"]]
        assert all(a["kind"] == "risk_acceptance" for a in page["approvals"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert mine <= set(seen) and len(seen) == len(set(seen))
    stamps = [c.get(f"{APPROVALS}/{i}", headers=team["admin"]).json()["created_at"] for i in seen]
    assert stamps == sorted(stamps, reverse=True)


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"kind": "launch_missiles"}, "kind"),
        ({"kind": "playbook_run"}, "kind"),
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"subject": ""}, "subject"),
        ({"subject": "a\x1b[31mred"}, "subject"),
        ({"action": "y" * 513}, "action"),
        ({"expires_in_s": 5}, "expires_in_s"),
        ({"expires_in_s": 8 * 86_400}, "expires_in_s"),  # past approvals.max_ttl_s (7 days)
        ({"expires_in_s": "3600"}, "expires_in_s"),
        ({"status": "approved"}, "status"),  # not the caller's to set
    ],
)
def test_a_bad_request_is_refused_naming_the_field(team: People, over: dict, field: str) -> None:
    body = {"kind": "response_action", "subject": "s", "action": "a", "reason": "r", **over}
    r = team.client.post(APPROVALS, json=body, headers=team["analyst"])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith(f"{field}:"), r.text


def test_bad_ids_queries_and_bodies_are_refused(team: People) -> None:
    c, admin = team.client, team["admin"]
    r = c.get(f"{APPROVALS}/not-an-id", headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("approval_id:")
    r = decide(c, admin, "NOT-A-UUID", "approve")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("approval_id:")
    assert c.get(f"{APPROVALS}/{MISSING}", headers=admin).status_code == 404
    assert decide(c, admin, MISSING, "approve").status_code == 404
    r = c.get(APPROVALS, params={"state": "pending"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("state: unknown query parameter")
    r = c.get(APPROVALS, params={"status": "maybe"}, headers=admin)
    assert r.status_code == 400 and "status" in r.json()["error"]["message"]
    r = c.get(APPROVALS, params={"kind": "nope"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("kind:")
    r = c.get(APPROVALS, params={"cursor": "garbage"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("cursor:")
    made = ask(c, team["analyst"])
    r = decide(c, admin, made["id"], "approve", comment="c" * 2001)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("comment:")
    r = decide(c, admin, made["id"], "approve", verdict="yes")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("verdict:")
    r = c.post(f"{APPROVALS}/{made['id']}:approve", content=b"x" * 20_000, headers=admin)
    assert r.status_code == 413
    r = c.post(f"{APPROVALS}/{made['id']}:approve", params={"force": "1"}, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("force:")
    assert c.post(f"{APPROVALS}/{made['id']}:maybe", headers=admin).status_code in (404, 405)
    assert c.get(f"{APPROVALS}/{made['id']}", headers=admin).json()["status"] == "pending"


def overdue(team: People, rid: str) -> None:
    """Move the request's expiry to a second ago (the time a real wait would take)."""
    with team.server.aw.engine.begin() as conn:
        conn.execute(update(approval_requests).where(approval_requests.c.id == rid).values(expires_at=time.time() - 1))


def test_the_expiry_is_the_default_or_the_requests_own(team: People) -> None:
    c = team.client
    default = ask(c, team["analyst"])
    own = ask(c, team["analyst"], expires_in_s=600)
    ttl = lambda doc: parse_ts(doc["expires_at"], "t") - parse_ts(doc["created_at"], "t")  # noqa: E731
    assert ttl(default) == pytest.approx(team.server.aw.settings.approvals.default_ttl_s, abs=0.01)
    assert ttl(own) == pytest.approx(600, abs=0.01)


def test_an_overdue_request_is_expired_by_the_watch_and_cannot_be_decided(team: People) -> None:
    c = team.client
    made = ask(c, team["analyst"])
    overdue(team, made["id"])
    wait_for(lambda: c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json()["status"] == "expired")
    for verb in ("approve", "reject"):
        r = decide(c, team["admin"], made["id"], verb)
        assert r.status_code == 409 and r.json()["error"]["message"].startswith("status: the request is expired")
    listed = c.get(APPROVALS, params={"status": "expired", "limit": 1000}, headers=team["admin"]).json()
    assert made["id"] in [a["id"] for a in listed["approvals"]]
    audit = c.get("/api/v1/audit", params={"action": "approval.expire", "limit": 1000}, headers=team["admin"]).json()
    (entry,) = [e for e in audit["entries"] if e["target"] == f"approval:{made['id']}"]
    assert entry["actor"]["kind"] == "system" and entry["details"]["status"] == "expired"


def test_a_decision_after_the_expiry_is_refused_even_before_the_watch_comes(team: People) -> None:
    c = team.client
    made = ask(c, team["analyst"])
    overdue(team, made["id"])
    r = decide(c, team["admin"], made["id"], "approve")  # the watch may or may not have come by
    assert r.status_code == 409 and "expired" in r.json()["error"]["message"], r.text
    doc = c.get(f"{APPROVALS}/{made['id']}", headers=team["admin"]).json()
    assert (doc["status"], doc["decided_by"]) == ("expired", None)
