"""One person cannot crowd out everybody else's approvals, on both stores: each requester may
have at most ``approvals.max_pending_per_requester`` requests waiting (held playbook runs
included); past it they get 507 naming that setting, while other people still ask."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.approvals.helpers import APPROVALS, People, ask, decide, settings
from tests.playbooks.helpers import PLAYBOOKS, make_alert, unique
from tests.support.server import run_server

CAP = 3


@pytest.fixture(scope="module")
def team(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    cfg = settings(tmp_path_factory.mktemp("data"), module_database_url, max_pending_per_requester=CAP)
    with run_server(cfg) as s, s.client() as c:
        people = People(s, c)
        people.person("admin", "admin")
        people.person("analyst", "analyst")
        people.person("analyst2", "analyst")
        yield people


def test_a_requester_past_their_bound_gets_507_and_others_still_ask(team: People) -> None:
    c = team.client
    mine = [ask(c, team["analyst"]) for _ in range(CAP)]
    body = {"kind": "access_grant", "subject": "db", "action": "grant read", "reason": "audit"}
    over = c.post(APPROVALS, json=body, headers=team["analyst"])
    assert over.status_code == 507, over.text
    assert "approvals.max_pending_per_requester (3)" in over.json()["error"]["message"]
    # the same person through an API key is the same requester
    key = team.key("analyst", "approvals:request")
    assert c.post(APPROVALS, json=body, headers=key).status_code == 507
    ask(c, team["analyst2"])  # another person is not crowded out
    step = {"action": "set_alert_status", "params": {"status": "acknowledged"}}
    made = c.post(
        PLAYBOOKS, json={"name": f"cap-{unique()}", "steps": [step], "requires_approval": True}, headers=team["admin"]
    )
    assert made.status_code == 201, made.text
    aid = make_alert(team.server.aw.engine)
    held = c.post(f"{PLAYBOOKS}/{made.json()['id']}/execute", json={"alert_id": aid}, headers=team["analyst"])
    assert held.status_code == 507 and "max_pending_per_requester" in held.json()["error"]["message"]
    assert decide(c, team["admin"], mine[0]["id"], "reject").status_code == 200
    ask(c, team["analyst"])  # a decided request no longer counts


@pytest.mark.parametrize("section", ["approvals", "playbooks"])
def test_a_misspelt_setting_is_refused_not_ignored(section: str) -> None:
    from pydantic import ValidationError

    from agentwatch.config import Settings

    with pytest.raises(ValidationError, match="max_pendng"):
        Settings(**{section: {"max_pendng": 5}})
