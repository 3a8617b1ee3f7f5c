"""``POST .../execute`` waits at most ``playbooks.execute_wait_s`` for the run: a quick run is
answered whole (200, as always), a longer one 202 with the run as it stands, going on in the
background (a client going away does not stop it) and listed with its final status when it
ends. At shutdown a background run gets a bounded time to end, and is stored ``interrupted``
past it. On SQLite and PostgreSQL, with a webhook receiver on 127.0.0.1 that answers late."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agentwatch.config import Settings
from agentwatch.soc.playbooks import store
from agentwatch.store.engine import make_engine
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, alert, calls, create, make_alert, receiver, unique
from tests.support.server import RunningServer, run_server

WAIT_S = 0.5
SLOW_S = 3.0


def settings(data_dir: Path, database_url: str, **playbooks: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        playbooks={"allow_private_urls": True, "refresh_s": 0.5, "execute_wait_s": WAIT_S, **playbooks},
    )


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("127.0.0.1") as r:
        yield r


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(settings(tmp_path_factory.mktemp("data"), module_database_url)) as s:
        yield s


def slow_steps(url: str, path: str, delay: float = SLOW_S) -> list[dict[str, Any]]:
    return [
        {"action": "notify_webhook", "params": {"url": f"{url}/{path}?delay={delay}", "timeout_s": 30}},
        {"action": "set_alert_status", "params": {"status": "closed"}},
    ]


def runs(c: httpx.Client, pid: str) -> list[dict[str, Any]]:
    r = c.get(f"{PLAYBOOKS}/{pid}/runs")
    assert r.status_code == 200, r.text
    return r.json()["runs"]


def test_a_quick_run_is_answered_whole(srv: RunningServer) -> None:
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, [{"action": "set_alert_status", "params": {"status": "acknowledged"}}])
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid})
        assert r.status_code == 200, r.text
        run = r.json()
        assert (run["status"], [s["status"] for s in run["steps"]]) == ("succeeded", ["succeeded"])
        assert run["finished_at"] is not None and alert(c, aid)["status"] == "acknowledged"


def test_a_run_past_the_wait_is_answered_202_and_ends_in_the_background(
    srv: RunningServer, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, slow_steps(url, path))
        started = time.monotonic()
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid})
        took = time.monotonic() - started
        assert r.status_code == 202, r.text
        assert took < SLOW_S - 1, took  # answered at the wait, not at the end of the run
        run = r.json()
        assert set(run) >= {"id", "playbook_id", "alert_id", "status", "steps", "started_at", "finished_at"}
        assert (run["playbook_id"], run["alert_id"], run["status"], run["finished_at"]) == (
            pb["id"],
            aid,
            "running",
            None,
        )
        (listed,) = runs(c, pb["id"])
        assert (listed["id"], listed["status"]) == (run["id"], "running")
        assert alert(c, aid)["status"] == "open"
        done = wait_for(lambda: [x for x in runs(c, pb["id"]) if x["status"] != "running"], 15, 0.2)
        assert (done[0]["id"], done[0]["status"]) == (run["id"], "succeeded")
        assert [s["status"] for s in done[0]["steps"]] == ["succeeded", "succeeded"]
        assert calls(got, path) == 1 and alert(c, aid)["status"] == "closed"


def test_a_client_going_away_does_not_stop_the_run(srv: RunningServer, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    aid = make_alert(srv.aw.engine)
    with srv.client() as c:
        pb = create(c, slow_steps(url, path, delay=1.5) + slow_steps(url, path + "-2", delay=1.5))
    with srv.client(timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": aid})
    with srv.client() as c:
        (run,) = wait_for(lambda: [x for x in runs(c, pb["id"]) if x["status"] != "running"], 20, 0.2)
        assert run["status"] == "succeeded", run
        assert calls(got, path) == 1 and calls(got, path + "-2") == 1


def _stored_runs(database_url: str, pid: str) -> list[dict[str, Any]]:
    engine = make_engine(database_url)
    try:
        return store.list_runs(engine, pid, 0, 10)[0]
    finally:
        engine.dispose()


def test_shutdown_lets_a_background_run_end(tmp_path: Path, database_url: str, hook: tuple[str, list]) -> None:
    url, got = hook
    path = unique()
    with run_server(settings(tmp_path, database_url)) as s, s.client() as c:
        pb = create(c, slow_steps(url, path, delay=1.5))
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": make_alert(s.aw.engine)})
        assert r.status_code == 202 and r.json()["status"] == "running", r.text
    (run,) = _stored_runs(database_url, pb["id"])
    assert (run["id"], run["status"]) == (r.json()["id"], "succeeded")
    assert calls(got, path) == 1


def test_shutdown_marks_a_run_still_going_past_the_drain_interrupted(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    with run_server(settings(tmp_path, database_url)) as s, s.client() as c:
        s.aw.components["playbook_runs"].drain_s = 0.5  # the shutdown's bound, short for the test
        pb = create(
            c, [{"action": "set_alert_status", "params": {"status": "acknowledged"}}, *slow_steps(url, path, 8)]
        )
        r = c.post(f"{PLAYBOOKS}/{pb['id']}/execute", json={"alert_id": make_alert(s.aw.engine)})
        assert r.status_code == 202, r.text
        wait_for(lambda: calls(got, path) == 1)
    (run,) = _stored_runs(database_url, pb["id"])
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    assert [s["status"] for s in run["steps"]] == ["succeeded", "interrupted", "skipped"]


@pytest.mark.parametrize(("value", "rule"), [(-1, "greater than or equal to 0"), (121, "less than or equal to 120")])
def test_execute_wait_s_is_bounded(tmp_path: Path, value: float, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(data_dir=tmp_path, playbooks={"execute_wait_s": value})
    text = str(caught.value)
    assert "playbooks.execute_wait_s" in text and rule in text
