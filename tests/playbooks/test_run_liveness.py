"""A run whose process died (SIGKILL, out of memory) does not stay ``running`` for ever: the
process running a run keeps its heartbeat, and a sweep ends every run whose heartbeat lapsed
``interrupted``, saying why and keeping the step results recorded. A run another live process
still runs is never swept, two sweepers never both end one run, and a run swept while its
process was only stalled stays ``interrupted`` when that process completes it. On SQLite and
PostgreSQL; the slow steps are webhooks to a receiver on 127.0.0.1 that answers late."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, update

from agentwatch.config import Settings
from agentwatch.soc.playbooks import liveness, store
from agentwatch.soc.playbooks.schema import playbook_runs
from agentwatch.store.engine import make_engine
from tests.cli.test_serve_and_replay import BIN, wait_up
from tests.detect.helpers import wait_for
from tests.playbooks.helpers import PLAYBOOKS, calls, make_alert, receiver, unique
from tests.support.server import free_port, run_server

STALE_S = 2.0


def settings(data_dir: Path, database_url: str, **playbooks: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        playbooks={"allow_private_urls": True, "refresh_s": 0.5, "execute_wait_s": 0.5, **playbooks},
    )


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("127.0.0.1") as r:
        yield r


def webhook(url: str, path: str, delay: float) -> dict[str, Any]:
    return {"action": "notify_webhook", "params": {"url": f"{url}/{path}?delay={delay}", "timeout_s": 30}}


def stored_playbook(engine: Engine) -> str:
    doc = {
        "name": f"live-{unique()}",
        "description": "",
        "enabled": True,
        "trigger": {"type": "manual"},
        "requires_approval": False,
        "steps": [{"action": "set_alert_status", "params": {"status": "closed"}}],
    }
    return store.create(engine, doc, "user:test", 1000)


def started(engine: Engine, pid: str, *, beat_at: float | None = None, held: bool = False) -> str:
    """A run stored as its process left it: ``running`` since a while, last heartbeat at
    ``beat_at`` (now when None), one step's result recorded."""
    held_by = unique() if held else None
    stored = store.start_run(engine, pid, unique(), dry_run=False, trigger="manual", started_by="u", held_by=held_by)
    assert stored is not None
    run_id = stored[0]
    if not held:
        assert store.beat(engine, run_id, [{"index": 0, "action": "set_alert_status", "status": "succeeded"}])
    when = time.time() if beat_at is None else beat_at
    with engine.begin() as conn:
        conn.execute(
            update(playbook_runs).where(playbook_runs.c.id == run_id).values(started_at=when - 5, heartbeat_at=when)
        )
    return run_id


def runs(c: httpx.Client, pid: str) -> list[dict[str, Any]]:
    r = c.get(f"{PLAYBOOKS}/{pid}/runs")
    assert r.status_code == 200, r.text
    return r.json()["runs"]


# -- the store -----------------------------------------------------------------------------------


def test_a_run_whose_heartbeat_lapsed_is_ended_interrupted_keeping_its_recorded_steps(engine: Engine) -> None:
    pid = stored_playbook(engine)
    now = time.time()
    run_id = started(engine, pid, beat_at=now - 120)
    ((run, also),) = store.sweep_stale(engine, now - 60, liveness.REASON)
    assert (run["id"], run["status"], run["reason"], also) == (run_id, "interrupted", liveness.REASON, False)
    got = store.get_run(engine, run_id)
    assert got is not None and got["status"] == "interrupted" and got["finished_at"] is not None
    assert [s["status"] for s in got["steps"]] == ["succeeded"]
    assert "may or may not have taken effect" in got["reason"]
    assert store.sweep_stale(engine, now - 60, liveness.REASON) == []  # ended once


def test_a_run_with_a_fresh_heartbeat_and_a_held_run_are_left_alone(engine: Engine) -> None:
    pid = stored_playbook(engine)
    now = time.time()
    alive = started(engine, pid, beat_at=now - 5)
    held = started(engine, pid, beat_at=now - 600, held=True)
    assert store.sweep_stale(engine, now - 60, liveness.REASON) == []
    assert store.get_run(engine, alive)["status"] == "running"
    assert store.get_run(engine, held)["status"] == "awaiting_approval"


def test_a_completion_after_the_sweep_does_not_turn_the_run_back(engine: Engine) -> None:
    pid = stored_playbook(engine)
    now = time.time()
    run_id = started(engine, pid, beat_at=now - 120)
    assert len(store.sweep_stale(engine, now - 60, liveness.REASON)) == 1
    back = [{"index": 0, "action": "set_alert_status", "status": "succeeded", "late": True}]
    assert not store.beat(engine, run_id, back)  # its process, back from a long pause
    assert not store.finish_run(engine, run_id, pid, "succeeded", back, 1000)
    got = store.get_run(engine, run_id)
    assert got is not None and (got["status"], got["reason"]) == ("interrupted", liveness.REASON)
    assert "late" not in got["steps"][0]


def test_two_sweepers_never_both_end_one_run(engine: Engine) -> None:
    pid = stored_playbook(engine)
    now = time.time()
    stale = {started(engine, pid, beat_at=now - 120) for _ in range(6)}
    gate = threading.Barrier(4)
    ended: list[str] = []
    acted: list[str] = []

    def also(conn: Any, run: dict[str, Any]) -> bool:
        acted.append(run["id"])
        return False

    def sweeper() -> None:
        gate.wait()
        ended.extend(run["id"] for run, _ in store.sweep_stale(engine, now - 60, liveness.REASON, also))

    threads = [threading.Thread(target=sweeper) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(ended) == sorted(stale) and sorted(acted) == sorted(stale)


# -- a server ------------------------------------------------------------------------------------


def test_a_server_sweeps_a_run_left_running_by_a_dead_process(tmp_path: Path, database_url: str) -> None:
    with run_server(settings(tmp_path, database_url, stale_run_s=STALE_S)) as s, s.client() as c:
        engine = s.aw.engine
        pid = stored_playbook(engine)
        dead = started(engine, pid, beat_at=time.time() - 60)
        (run,) = wait_for(lambda: [r for r in runs(c, pid) if r["status"] != "running"], 15, 0.2)
        assert (run["id"], run["status"], run["reason"]) == (dead, "interrupted", liveness.REASON)
        assert run["finished_at"] is not None and [x["status"] for x in run["steps"]] == ["succeeded"]
        assert s.aw.components["playbook_runs"].swept >= 1


def test_the_heartbeat_is_refreshed_while_a_slow_run_goes_on(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    steps = [webhook(url, path, 1.0), webhook(url, path + "-2", 6.0)]
    with run_server(settings(tmp_path, database_url, stale_run_s=STALE_S)) as s, s.client() as c:
        aid = make_alert(s.aw.engine)
        r = c.post(PLAYBOOKS, json={"name": f"slow-{unique()}", "steps": steps})
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        r = c.post(f"{PLAYBOOKS}/{pid}/execute", json={"alert_id": aid})
        assert r.status_code == 202 and r.json()["status"] == "running", r.text
        run_id = r.json()["id"]
        wait_for(lambda: calls(got, path + "-2") == 1, 15, 0.05)

        def first_step_recorded() -> bool:
            now = store.get_run(s.aw.engine, run_id)
            assert now is not None and now["status"] == "running", now
            return [x["status"] for x in now["steps"]] == ["succeeded"]

        # The heartbeat task writes a step's result once the step has ended, while the next one
        # starts: recorded soon after, with the second step (6 s) still running.
        wait_for(first_step_recorded, 2.0, 0.05)
        beats = set()
        deadline = time.monotonic() + 3.0  # longer than stale_run_s: a live run outlasts it
        while time.monotonic() < deadline:
            now = store.get_run(s.aw.engine, run_id)
            assert now is not None and now["status"] == "running", now
            assert [x["status"] for x in now["steps"]] == ["succeeded"]  # and stays recorded
            beats.add(now["heartbeat_at"])
            time.sleep(0.2)
        assert len(beats) >= 3, beats
        done = wait_for(lambda: [x for x in runs(c, pid) if x["status"] != "running"], 15, 0.2)
        assert (done[0]["id"], done[0]["status"], done[0]["reason"]) == (run_id, "succeeded", None)


def test_a_run_swept_while_its_process_stalled_stays_interrupted(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    steps = [webhook(url, path, 2.0), {"action": "set_alert_status", "params": {"status": "closed"}}]
    with run_server(settings(tmp_path, database_url)) as s, s.client() as c:
        aid = make_alert(s.aw.engine)
        pid = c.post(PLAYBOOKS, json={"name": f"stall-{unique()}", "steps": steps}).json()["id"]
        r = c.post(f"{PLAYBOOKS}/{pid}/execute", json={"alert_id": aid})
        assert r.status_code == 202, r.text
        wait_for(lambda: calls(got, path) == 1, 15, 0.05)
        # a sweeper for which this run's heartbeat lapsed, as after a pause of its process
        # longer than stale_run_s (a very long GC pause, a frozen VM)
        sweeps = s.aw.components["playbook_runs"]
        later = time.time() + 10 * s.aw.settings.playbooks.stale_run_s
        loop = sweeps._sweeping.get_loop()
        assert asyncio.run_coroutine_threadsafe(sweeps.sweep_now(later), loop).result(30) == 1
        wait_for(lambda: c.get(f"/api/v1/alerts/{aid}").json()["status"] == "closed", 15, 0.1)  # it went on
        time.sleep(0.5)
        (run,) = runs(c, pid)
        assert (run["id"], run["status"], run["reason"]) == (r.json()["id"], "interrupted", liveness.REASON)


def test_the_stale_run_bound_is_checked() -> None:
    assert Settings(playbooks={"stale_run_s": 2}).playbooks.stale_run_s == 2
    for bad in (0, 1.5, -5, 3601, "soon"):
        with pytest.raises(ValidationError, match="stale_run_s"):
            Settings(playbooks={"stale_run_s": bad})


def test_the_heartbeat_and_the_sweep_follow_the_bound() -> None:
    assert liveness.beat_every_s(Settings().playbooks) == 5.0
    assert liveness.sweep_every_s(Settings().playbooks) == 30.0
    short = Settings(playbooks={"stale_run_s": 2}).playbooks
    assert (liveness.beat_every_s(short), liveness.sweep_every_s(short)) == (0.5, 1.0)


# -- a process killed outright -------------------------------------------------------------------


def _serve(data_dir: Path, database_url: str, run: int, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environ = {
        **os.environ,
        "AGENTWATCH_DATA_DIR": str(data_dir),
        "AGENTWATCH_DATABASE_URL": database_url,
        "AGENTWATCH_LOG_LEVEL": "WARNING",
        "AGENTWATCH_DETECTION__ATR_BUNDLED": "false",
        "AGENTWATCH_DETECTION__PACK": "false",
        "AGENTWATCH_PLAYBOOKS__ALLOW_PRIVATE_URLS": "true",
        "AGENTWATCH_PLAYBOOKS__EXECUTE_WAIT_S": "0.5",
        **env,
    }
    with (data_dir / f"serve-{run}.err").open("wb") as err:
        proc = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), "--no-auth"], env=environ, stdout=subprocess.DEVNULL, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, timeout=60)
    except BaseException:
        proc.kill()
        proc.wait(30)
        raise
    return proc, url


def test_a_run_of_a_killed_server_is_ended_interrupted_by_the_next_one(
    tmp_path: Path, database_url: str, hook: tuple[str, list]
) -> None:
    url, got = hook
    path = unique()
    # the slow step answers long after the kill (which comes as soon as it is called), and soon
    # enough not to hold the module's receiver open at its teardown
    steps = [webhook(url, path, 0), webhook(url, path + "-slow", 5)]
    engine = make_engine(database_url)
    first, second = None, None
    try:
        first, base = _serve(tmp_path, database_url, 1)
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post(PLAYBOOKS, json={"name": f"killed-{unique()}", "steps": steps})
            assert r.status_code == 201, r.text
            pid = r.json()["id"]
            r = c.post(f"{PLAYBOOKS}/{pid}/execute", json={"alert_id": make_alert(engine)})
            assert r.status_code == 202 and r.json()["status"] == "running", r.text
            run_id = r.json()["id"]
            wait_for(lambda: calls(got, path + "-slow") == 1, 15, 0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        left = store.get_run(engine, run_id)
        assert left is not None and left["status"] == "running"  # nothing ended it
        assert [x["status"] for x in left["steps"]] == ["succeeded"]
        second, base = _serve(tmp_path, database_url, 2, AGENTWATCH_PLAYBOOKS__STALE_RUN_S=str(STALE_S))
        with httpx.Client(base_url=base, timeout=30) as c:
            (run,) = wait_for(lambda: [x for x in runs(c, pid) if x["status"] != "running"], 30, 0.2)
        assert (run["id"], run["status"], run["reason"]) == (run_id, "interrupted", liveness.REASON)
        assert run["finished_at"] is not None and [x["status"] for x in run["steps"]] == ["succeeded"]
        assert calls(got, path + "-slow") == 1  # never started again
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        engine.dispose()
