"""Who may do what with playbooks: reading needs ``alerts:read``, writing ``playbooks:write``,
running and simulating ``playbooks:run`` (with ``alerts:read``); without credentials, 401.
The analyst role holds both playbook permissions; the viewer role neither."""

from __future__ import annotations

from pathlib import Path

from agentwatch.soc.auth.roles import BUILTIN_ROLES
from tests.playbooks.helpers import PLAYBOOKS, make_alert
from tests.soc.helpers import auth_server

CLOSE = {"action": "set_alert_status", "params": {"status": "closed"}}


def test_each_route_needs_its_permission(database_url: str, tmp_path: Path) -> None:
    with auth_server(database_url, tmp_path) as srv:
        c = srv.client
        aid = make_alert(srv.server.aw.engine)
        _, reader = srv.key("alerts:read")
        _, writer = srv.key("alerts:read", "playbooks:write", "alerts:write")
        runner_id, runner = srv.key("alerts:read", "playbooks:run")
        _, run_only = srv.key("playbooks:run")
        body = {"name": "perm", "steps": [CLOSE]}
        assert c.post(PLAYBOOKS, json=body).status_code == 401
        assert c.get(PLAYBOOKS).status_code == 401
        assert c.post(PLAYBOOKS, json=body, headers=reader).status_code == 403
        assert c.post(PLAYBOOKS, json=body, headers=runner).status_code == 403
        made = c.post(PLAYBOOKS, json=body, headers=writer)
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
        assert c.get(f"{PLAYBOOKS}/{pid}", headers=reader).status_code == 200
        assert c.get(f"{PLAYBOOKS}/{pid}/runs", headers=reader).status_code == 200
        assert c.get(f"{PLAYBOOKS}/{pid}", headers=run_only).status_code == 403
        assert c.put(f"{PLAYBOOKS}/{pid}", json=body, headers=reader).status_code == 403
        assert c.delete(f"{PLAYBOOKS}/{pid}", headers=runner).status_code == 403
        run = {"alert_id": aid}
        dry = {"alert_id": aid, "action": "set_alert_status", "params": {"status": "closed"}}
        for headers in (reader, writer, run_only):
            assert c.post(f"{PLAYBOOKS}/{pid}/execute", json=run, headers=headers).status_code == 403
            assert c.post("/api/v1/actions/dry-run", json=dry, headers=headers).status_code == 403
        assert c.post("/api/v1/actions/dry-run", json=dry, headers=runner).status_code == 200
        done = c.post(f"{PLAYBOOKS}/{pid}/execute", json=run, headers=runner)
        assert done.status_code == 200, done.text
        assert done.json()["started_by"] == f"api_key:{runner_id}"
        assert c.get(f"/api/v1/alerts/{aid}", headers=reader).json()["status"] == "closed"
        assert c.delete(f"{PLAYBOOKS}/{pid}", headers=writer).status_code == 204


def test_a_webhook_url_is_shown_whole_only_to_who_may_change_the_playbook(database_url: str, tmp_path: Path) -> None:
    url = "http://1.1.1.1/hooks/s3cr3t-path?token=abc"  # saved only: nothing is sent
    with auth_server(database_url, tmp_path) as srv:
        c = srv.client
        _, reader = srv.key("alerts:read")
        _, writer = srv.key("alerts:read", "playbooks:write", "alerts:write")
        body = {"name": "hook", "steps": [{"action": "notify_webhook", "params": {"url": url}}]}
        made = c.post(PLAYBOOKS, json=body, headers=writer)
        assert made.status_code == 201, made.text
        assert made.json()["steps"][0]["params"]["url"] == url
        pid = made.json()["id"]
        assert c.get(f"{PLAYBOOKS}/{pid}", headers=writer).json()["steps"][0]["params"]["url"] == url
        for doc in (
            c.get(f"{PLAYBOOKS}/{pid}", headers=reader).json(),
            c.get(PLAYBOOKS, headers=reader).json()["playbooks"][0],
        ):
            shown = doc["steps"][0]["params"]["url"]
            assert shown.startswith("http://1.1.1.1/") and "s3cr3t" not in shown and "abc" not in shown


def test_saving_a_playbook_needs_the_permission_of_each_of_its_steps(database_url: str, tmp_path: Path) -> None:
    """``playbooks:write`` lends nothing: a playbook runs later on its own, so whoever saves it
    must be allowed to do what its steps do."""
    steps = {
        "alerts:write": CLOSE,
        "cases:write": {
            "action": "add_case_comment",
            "params": {"case_id": "77777777-7777-7777-7777-777777777777", "body": "x"},
        },
        "intel:write": {"action": "add_indicator", "params": {"entity_type": "host"}},
    }
    with auth_server(database_url, tmp_path) as srv:
        c = srv.client
        _, writer = srv.key("alerts:read", "playbooks:write")
        for i, (needed, step) in enumerate(steps.items()):
            body = {"name": f"escalate-{i}", "steps": [{"action": "assign_alert", "params": {"assignee": None}}, step]}
            _, holder = srv.key("alerts:read", "playbooks:write", "alerts:write", needed)
            refused = c.post(PLAYBOOKS, json=body, headers=writer)
            assert refused.status_code == 403, refused.text
            message = refused.json()["error"]["message"]
            assert message.startswith("steps[0].action:") and "'alerts:write'" in message, message
            body["steps"] = [step]
            refused = c.post(PLAYBOOKS, json=body, headers=writer)
            assert refused.status_code == 403 and f"{needed!r}" in refused.json()["error"]["message"], refused.text
            made = c.post(PLAYBOOKS, json=body, headers=holder)
            assert made.status_code == 201, made.text
            replaced = c.put(f"{PLAYBOOKS}/{made.json()['id']}", json=body, headers=writer)
            assert replaced.status_code == 403, replaced.text
        assert c.get(PLAYBOOKS, headers=writer).json()["meta"]["total"] == len(steps)


def test_analysts_hold_the_playbook_permissions_and_viewers_do_not() -> None:
    assert {"playbooks:write", "playbooks:run"} <= set(BUILTIN_ROLES["analyst"][1])
    assert not {"playbooks:write", "playbooks:run"} & set(BUILTIN_ROLES["viewer"][1])
