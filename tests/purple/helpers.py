"""Shared helpers of the purple-team tests: a server with the rule pack and built-in rules on
(the bundled ATR set off: it loads slowly and no catalogue test relies on it), and a wait for
an execution's verdict."""

from __future__ import annotations

import time
from typing import Any

from agentwatch.config import Settings
from tests.detect.helpers import with_detection

BASE = "/api/v1/purple-team"
FINAL = ("passed", "failed", "cancelled")


def purple_settings(data_dir: Any, database_url: str, **auth: Any) -> Settings:
    base = Settings(data_dir=data_dir, database_url=database_url, auth={"enabled": False, **auth})
    return with_detection(base)


def start(c: Any, test_id: str, timeout_s: float = 30) -> dict[str, Any]:
    r = c.post(f"{BASE}/executions", json={"test_id": test_id, "timeout_s": timeout_s})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "running"
    return r.json()


def finished(c: Any, execution_id: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = c.get(f"{BASE}/executions/{execution_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in FINAL:
            return r.json()
        assert time.monotonic() < deadline, f"execution {execution_id} still running after {within} s"
        time.sleep(0.1)


def run(c: Any, test_id: str, timeout_s: float = 30) -> dict[str, Any]:
    return finished(c, start(c, test_id, timeout_s)["id"], timeout_s + 30)


def set_rule(c: Any, rule_id: str, enabled: bool) -> None:
    r = c.post(f"/api/v1/rules/{rule_id}/{'enable' if enabled else 'disable'}")
    assert r.status_code == 200, r.text
