"""Who may see suggestions and run their actions, on a server with authentication on: an
action is bound to the caller it was offered to, runs once, expires, cannot be forged or
altered, and needs its permission again when it runs. Bad requests name the field."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from agentwatch.soc.copilot.schema import copilot_actions
from agentwatch.soc.copilot.store import digest
from tests.copilot.seed import CONTEXT, alert, context, of_kind, run, unique
from tests.soc.helpers import MISSING, PASSWORD, AuthServer, auth_server

RUN = "/api/v1/copilot/actions"


@pytest.fixture(scope="module")
def authed(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_server(module_database_url, tmp_path_factory.mktemp("data")) as a:
        yield a


@pytest.fixture(scope="module")
def analysts(authed: AuthServer) -> tuple[dict[str, str], dict[str, str]]:
    """Two analysts' API keys."""
    return _person(authed, "analyst")[1], _person(authed, "analyst")[1]


@pytest.fixture(scope="module")
def viewer(authed: AuthServer) -> dict[str, str]:
    return _person(authed, "viewer", "alerts:read")[1]


def _person(a: AuthServer, role: str, *scopes: str) -> tuple[str, dict[str, str]]:
    """A new user with ``role`` and an API key of theirs with ``scopes`` (all of the role's
    when none are given): the user's id and the key's headers."""
    email = f"{unique('p')}@example.com"
    user = a.server.aw.auth.users.create(email, PASSWORD, role)
    login = a.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    wanted = list(scopes) or ["alerts:read", "alerts:write", "cases:write", "rules:read", "playbooks:run"]
    made = a.client.post("/api/v1/api-keys", headers=bearer, json={"name": "k", "scopes": wanted})
    assert made.status_code == 201, made.text
    return user.id, {"X-API-Key": made.json()["key"]}


def _offered(a: AuthServer, headers: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An alert sharing a host with a case's alert, and the link action offered to ``headers``."""
    host = unique()
    earlier = alert(a.server.aw.engine, ("host", host))
    fresh = alert(a.server.aw.engine, ("host", host))
    made = a.client.post("/api/v1/cases", headers=a.admin, json={"title": "c", "alert_ids": [earlier["id"]]})
    assert made.status_code == 201, made.text
    (hit,) = of_kind(context(a.client, "alert", fresh["id"], headers=headers), "related_case")
    assert hit["action"] is not None
    return fresh, hit["action"]


def _error(r: Any, status: int) -> str:
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


def test_reading_needs_alerts_read_and_running_needs_it_too(authed: AuthServer) -> None:
    c = authed.client
    fresh = alert(authed.server.aw.engine, ("host", unique()))
    assert c.get(f"{CONTEXT}/alert/{fresh['id']}").status_code == 401
    assert c.post(f"{RUN}/ca_{'a' * 43}:run").status_code == 401
    _, writer = authed.key("cases:write")
    assert "alerts:read" in _error(c.get(f"{CONTEXT}/alert/{fresh['id']}", headers=writer), 403)
    assert "alerts:read" in _error(c.post(f"{RUN}/ca_{'a' * 43}:run", headers=writer), 403)


def test_a_rules_context_needs_rules_read(authed: AuthServer) -> None:
    _, reader = authed.key("alerts:read")
    assert "rules:read" in _error(authed.client.get(f"{CONTEXT}/rule/some-rule", headers=reader), 403)


def test_an_action_runs_for_the_caller_it_was_offered_to_and_once(
    authed: AuthServer, analysts: tuple[dict[str, str], dict[str, str]]
) -> None:
    analyst, other_analyst = analysts
    fresh, action = _offered(authed, analyst)
    assert "no such action was offered to you" in _error(run(authed.client, action, headers=other_analyst), 404)
    assert run(authed.client, action, headers=authed.admin).status_code == 404  # even an admin
    done = run(authed.client, action, headers=analyst)
    assert done.status_code == 200, done.text
    assert done.json()["result"]["alert_id"] == fresh["id"]
    assert "runs once" in _error(run(authed.client, action, headers=analyst), 409)
    audit = authed.client.get(
        "/api/v1/audit", headers=authed.admin, params={"action": "POST /api/v1/copilot/actions/{action_id}:run"}
    ).json()["entries"]
    ok = [e for e in audit if e["status"] == 200]
    assert ok[0]["details"] == {"action": "link_alert_to_case", "resource": f"alert/{fresh['id']}"}
    assert action["id"] not in str(ok[0]["details"])  # names, not the id (the path holds it: bound, used up)


def test_forged_altered_and_malformed_ids_are_refused(
    authed: AuthServer, analysts: tuple[dict[str, str], dict[str, str]]
) -> None:
    analyst = analysts[0]
    _, action = _offered(authed, analyst)
    forged = {"id": "ca_" + secrets.token_urlsafe(32)}
    assert run(authed.client, forged, headers=analyst).status_code == 404
    last = action["id"][-1]
    altered = {"id": action["id"][:-1] + ("A" if last != "A" else "B")}
    assert run(authed.client, altered, headers=analyst).status_code == 404
    for bad in ("nope", "ca_short", "ca_" + "!" * 43):
        assert _error(run(authed.client, {"id": bad}, headers=analyst), 400).startswith("action_id: ")
    assert run(authed.client, action, headers=analyst).status_code == 200  # the real one still runs


def test_an_expired_action_is_refused(authed: AuthServer, analysts: tuple[dict[str, str], dict[str, str]]) -> None:
    analyst = analysts[1]
    fresh, action = _offered(authed, analyst)
    with authed.server.aw.engine.begin() as conn:
        conn.execute(
            update(copilot_actions)
            .where(copilot_actions.c.digest == digest(action["id"]))
            .values(expires_at=time.time() - 1)
        )
    assert "expired" in _error(run(authed.client, action, headers=analyst), 410)
    case_ids = [
        s["data"]["case_id"]
        for s in of_kind(context(authed.client, "alert", fresh["id"], headers=analyst), "related_case")
    ]
    assert len(case_ids) == 1  # still not linked: the expired action did nothing


def test_permissions_are_checked_again_when_the_action_runs(authed: AuthServer) -> None:
    user_id, analyst = _person(authed, "analyst")
    fresh, action = _offered(authed, analyst)
    demoted = authed.client.put(f"/api/v1/users/{user_id}", headers=authed.admin, json={"role": "viewer"})
    assert demoted.status_code == 200, demoted.text
    assert "cases:write" in _error(run(authed.client, action, headers=analyst), 403)
    promoted = authed.client.put(f"/api/v1/users/{user_id}", headers=authed.admin, json={"role": "analyst"})
    assert promoted.status_code == 200
    assert run(authed.client, action, headers=analyst).status_code == 200  # the refusal did not use it up


def test_a_viewer_is_told_what_an_action_needs_and_offered_none(authed: AuthServer, viewer: dict[str, str]) -> None:
    host = unique()
    alert(authed.server.aw.engine, ("host", host))
    fresh = alert(authed.server.aw.engine, ("host", host))
    doc = context(authed.client, "alert", fresh["id"], headers=viewer)
    for kind, permission in (("related_alerts", "cases:write"), ("unassigned", "alerts:write")):
        (hit,) = of_kind(doc, kind)
        assert hit["action"] is None and permission in hit["action_unavailable"]


def test_a_playbook_step_the_caller_may_not_do_is_named(authed: AuthServer, viewer: dict[str, str]) -> None:
    made = authed.client.post(
        "/api/v1/playbooks",
        headers=authed.admin,
        json={"name": unique("pb"), "steps": [{"action": "assign_alert", "params": {"assignee": "x"}}]},
    )
    assert made.status_code == 201, made.text
    (hit,) = of_kind(context(authed.client, "playbook", made.json()["id"], headers=viewer), "missing_permission")
    assert hit["data"] == {"permission": "alerts:write", "steps": [0]} and "steps[0] (assign_alert)" in hit["reason"]
    assert context(authed.client, "playbook", made.json()["id"], headers=authed.admin)["suggestions"] == []


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("incident/abc", 400, "resource_type: must be one of alert, case, rule, playbook"),
        ("alert/not_an_id!", 400, "resource_id: must be an alert id"),
        ("case/ABC", 400, "resource_id: must be a case id"),
        ("playbook/xyz", 400, "resource_id: must be a playbook id"),
        ("rule/bad%20id", 400, "resource_id: must be a rule id"),
        ("alert/no-such-alert", 404, "alert not found"),
        (f"case/{MISSING}", 404, "case not found"),
        (f"playbook/{MISSING}", 404, "playbook not found"),
        ("rule/no-such-rule", 404, "rule not found"),
    ],
)
def test_bad_and_unknown_resources(authed: AuthServer, path: str, status: int, field: str) -> None:
    r = authed.client.get(f"{CONTEXT}/{path}", headers=authed.admin)
    assert _error(r, status).startswith(field)


def test_unknown_query_parameters_are_refused(authed: AuthServer) -> None:
    fresh = alert(authed.server.aw.engine, ("host", unique()))
    r = authed.client.get(f"{CONTEXT}/alert/{fresh['id']}", headers=authed.admin, params={"foo": "1"})
    assert r.status_code == 400 and "foo" in r.json()["error"]["message"]
