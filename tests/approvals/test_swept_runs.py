"""An approved playbook run whose node stopped beating while it ran (killed, or stalled past
``playbooks.stale_run_s``) is ended ``interrupted`` by a sweep, and its approval request ends
``failed`` in the same transaction, saying so, audited once as the recovery's: the request does
not show ``run_status: running`` for ever. A node that was only stalled and then completes the
run changes neither. On SQLite and PostgreSQL, with a webhook receiver on 127.0.0.1 that
answers late."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentwatch.soc.playbooks import liveness
from tests.approvals.helpers import decide
from tests.approvals.test_approve_wait import audited, calls, held, request_of, runs_of, slow_steps, team_on
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import receiver, unique


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("127.0.0.1") as r:
        yield r


def test_a_swept_run_ends_its_request_failed_once_and_stays_so(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    with team_on(tmp_path, database_url) as team:
        pb, aid, run = held(team, slow_steps(url, path, delay=2))
        r = decide(team.client, team["admin"], run["approval_id"], "approve")
        assert r.status_code == 200 and r.json()["outcome"] == {"run_id": run["id"], "run_status": "running"}, r.text
        wait_for(lambda: calls(got, path) == 1)
        sweeps = team.server.aw.components["playbook_runs"]
        later = time.time() + 10 * team.server.aw.settings.playbooks.stale_run_s  # its heartbeat lapsed by then
        assert asyncio.run_coroutine_threadsafe(sweeps.sweep_now(later), sweeps._sweeping.get_loop()).result(30) == 1
        ended = {"run_id": run["id"], "run_status": "interrupted", "error": liveness.REASON}
        request = request_of(team, run["approval_id"])
        assert (request["status"], request["outcome"]) == ("failed", ended)
        # the node was only stalled: the run goes on and ends, and records nothing more
        alert = f"/api/v1/alerts/{aid}"
        wait_for(lambda: team.client.get(alert, headers=team["admin"]).json()["status"] == "closed", 15, 0.1)
        time.sleep(0.5)
        (ran,) = runs_of(team, pb["id"])
        assert (ran["id"], ran["status"], ran["reason"]) == (run["id"], "interrupted", liveness.REASON)
        request = request_of(team, run["approval_id"])
        assert (request["status"], request["outcome"]) == ("failed", ended)
        assert wait_for(lambda: audited(team, run["approval_id"])) == ["approval.approve", "approval.failed"]
        time.sleep(0.5)
        assert audited(team, run["approval_id"]) == ["approval.approve", "approval.failed"]
