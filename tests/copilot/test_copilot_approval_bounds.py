"""A playbook run the copilot starts is held for approval like any other: past the requester's
own bound (``approvals.max_pending_per_requester``) the answer is 507 naming that bound, not the
global one, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from tests.copilot.seed import alert, context, of_kind, run, unique
from tests.soc.helpers import auth_server


def test_a_held_copilot_run_past_the_requesters_bound_names_that_bound(database_url: str, tmp_path: Path) -> None:
    with auth_server(database_url, tmp_path, approvals={"max_pending_per_requester": 1}) as authed:
        tag = unique("tag")
        made = authed.client.post(
            "/api/v1/playbooks",
            headers=authed.admin,
            json={
                "name": unique("pb"),
                "requires_approval": True,
                "trigger": {"type": "alert", "min_severity": 1, "tags": [tag]},
                "steps": [{"action": "assign_alert", "params": {"assignee": "pb-bot"}}],
            },
        )
        assert made.status_code == 201, made.text
        _, key = authed.key("alerts:read", "playbooks:run")
        answers = []
        for _ in range(2):
            tagged = alert(authed.server.aw.engine, ("host", unique()), tags=(tag,))
            (hit,) = of_kind(context(authed.client, "alert", tagged["id"], headers=key), "playbook_match")
            answers.append(run(authed.client, hit["action"], headers=key))
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["result"]["run"]["status"] == "awaiting_approval"
        assert answers[1].status_code == 507, answers[1].text
        assert "approvals.max_pending_per_requester (1)" in answers[1].json()["error"]["message"]
