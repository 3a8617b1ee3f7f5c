"""Defect hunt on the eval's time bound: a proposed rule that is slow on big stored events (800
regular expressions over a 300 kB field take most of a second per event) must not hold a replay
slot and a worker thread for as long as the window takes to read: past
``proposals.max_eval_s`` the replay stops, says so, and the eval fails (a rule that slow would
be as slow on every ingested event once live)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.detect.proposals.helpers import ROUTE, create, ingest, tool_call
from tests.support.server import RunningServer, run_server

EVENTS = 20


@pytest.fixture(scope="module")
def slow_srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=module_database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        proposals={"max_eval_s": 1},
    )
    with run_server(cfg) as srv:
        yield srv


def slow_logic() -> str:
    patterns = "\n".join(f"      - 'a.*b.*a.*b.*q{i}'" for i in range(800))
    return f"""\
title: Slow on big fields
id: {uuid.uuid4()}
level: high
logsource: {{product: agentwatch, category: tool_call}}
detection:
  sel:
    tool_name|re:
{patterns}
  condition: sel
"""


def test_an_eval_stops_at_its_time_bound_and_fails(slow_srv):
    with slow_srv.client() as c:
        ingest(c, {}, [tool_call("ab" * 150_000, f"big-{i}") for i in range(EVENTS)])
        cases = {"must_match": [tool_call("ababq0")], "must_not_match": [tool_call("abab")]}
        p = create(
            c,
            {},
            {"title": "Slow", "description": "", "logic": slow_logic(), "mitre_tags": [], "test_cases": cases},
        )
        deadline = time.monotonic() + 30
        while c.get("/api/v1/events", params={"limit": EVENTS}).json().get("meta", {}).get("total", 0) < EVENTS:
            assert time.monotonic() < deadline, "events not stored"
            time.sleep(0.2)
        started = time.monotonic()
        r = c.post(f"{ROUTE}/{p['id']}/eval", timeout=120)
        took = time.monotonic() - started
    assert r.status_code == 201, r.text
    res = r.json()["result"]
    assert res["checks"] == {"must_match": True, "must_not_match": True, "window_hits": True, "within_time": False}
    assert r.json()["passed"] is False
    assert res["window"]["timed_out"] is True and res["window"]["truncated"] is True
    assert res["window"]["events_read"] < EVENTS  # stopped before the whole window
    assert took < 10, f"the eval took {took:.1f} s with a 1 s bound"
