"""The server's periodic maintenance: expired alert explanations leave the store on their own.

Before, they were deleted only when an explanation was asked for or read; a server nobody
asked went on keeping them. Each test runs a real server (on SQLite and PostgreSQL) with a
short ``maintenance.interval_s`` and sends it no explain request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentwatch.alerts.explanation_cache import CACHE_PREFIX
from agentwatch.config import Settings
from agentwatch.maintenance import Chore
from agentwatch.store import kv
from tests.cli.test_cli_hunt import run
from tests.detect.helpers import wait_for
from tests.support.server import RunningServer, open_settings, run_server

INTERVAL_S = 0.5


def explanation(expires_at: float) -> dict[str, Any]:
    now = time.time()
    return {
        "alert_id": "a",
        "explanation": "what happened",
        "model": "m",
        "created_at": now - 10,
        "expires_at": expires_at,
        "alert_fingerprint": "f",
        "asked_model": "m",
    }


@pytest.fixture
def srv(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path, database_url).model_copy(
        update={"maintenance": Settings(maintenance={"interval_s": INTERVAL_S}).maintenance}
    )
    with run_server(settings) as s:
        yield s


def test_an_expired_explanation_is_deleted_without_any_explain_request(srv):
    engine = srv.aw.engine
    expired, fresh = explanation(time.time() - 1), explanation(time.time() + 3600)
    kv.put(engine, CACHE_PREFIX + "old", expired)
    kv.put(engine, CACHE_PREFIX + "new", fresh)
    kv.put(engine, "runtime_filters", {"pid_filter": []})  # not an explanation: never the chore's
    wait_for(lambda: kv.get(engine, CACHE_PREFIX + "old") is None, timeout=10)
    assert kv.get(engine, CACHE_PREFIX + "new") == fresh
    assert kv.get(engine, "runtime_filters") == {"pid_filter": []}


def test_a_failing_chore_does_not_stop_the_others_or_the_next_rounds(srv):
    failures = []

    def broken(_stopping: threading.Event) -> int:
        failures.append(time.monotonic())
        raise RuntimeError("the chore broke")

    srv.aw.components["maintenance"].chores.insert(0, Chore("broken", broken))
    wait_for(lambda: len(failures) >= 2, timeout=10)  # the round after a failure came
    engine = srv.aw.engine
    kv.put(engine, CACHE_PREFIX + "old", explanation(time.time() - 1))  # after the failures
    # the purge, listed after the broken chore, still runs in those rounds
    wait_for(lambda: kv.get(engine, CACHE_PREFIX + "old") is None, timeout=10)


def test_shutdown_does_not_wait_for_a_long_chore(tmp_path, database_url):
    """A chore is told to stop (``stopping``) and the server's shutdown does not wait out its work."""
    started, told = threading.Event(), threading.Event()

    def slow(stopping: threading.Event) -> int:
        started.set()
        if stopping.wait(30):  # a long purge checks between its pages
            told.set()
        return 0

    settings = open_settings(tmp_path, database_url).model_copy(
        update={"maintenance": Settings(maintenance={"interval_s": INTERVAL_S}).maintenance}
    )
    with run_server(settings) as s:
        s.aw.components["maintenance"].chores.append(Chore("slow", slow))
        assert started.wait(10), "the chore never ran"
        leaving = time.monotonic()
    took = time.monotonic() - leaving
    assert told.is_set()
    assert took < 10, f"shutdown took {took:.1f} s"


def test_the_default_interval_is_ten_minutes():
    assert Settings().maintenance.interval_s == 600


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (0, "greater than or equal to 0.5"),
        (0.1, "greater than or equal to 0.5"),
        (-5, "greater than or equal to 0.5"),
        (86_401, "less than or equal to 86400"),
        (float("nan"), "finite number"),
        (float("inf"), "finite number"),
        ("soon", "valid number"),
    ],
)
def test_a_bad_interval_is_refused_naming_the_setting_and_the_rule(value, rule):
    with pytest.raises(ValidationError) as caught:
        Settings(maintenance={"interval_s": value})
    (error,) = caught.value.errors()
    assert error["loc"] == ("maintenance", "interval_s")
    assert rule in error["msg"]


def test_a_bad_interval_from_the_environment_stops_the_command(tmp_path):
    ran = run(["config"], tmp_path, env={"AGENTWATCH_MAINTENANCE__INTERVAL_S": "0"})
    assert ran.code == 2
    assert "maintenance.interval_s" in ran.stderr and "greater than or equal to 0.5" in ran.stderr
    assert "AGENTWATCH_MAINTENANCE__INTERVAL_S" in ran.stderr
