"""Builders of the detection-proposal tests: Sigma logic, tool-call events, proposals, ingest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

ROUTE = "/api/v1/detection-proposals"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sigma(tool: str, rule_id: str | None = None, title: str = "Agent calls a watched tool") -> str:
    """A Sigma rule matching agent tool calls of the tool named ``tool``."""
    return f"""\
title: {title}
id: {rule_id or uuid.uuid4()}
status: experimental
level: high
tags: [attack.execution]
logsource: {{product: agentwatch, category: tool_call}}
detection:
  sel:
    tool_name: {tool}
  condition: sel
"""


def tool_call(tool: str, host: str = "h1", **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "host": {"hostname": host},
        "data": {"tool": {"name": tool, "type": "shell"}, "arguments": {"command": "ls"}},
        **extra,
    }


def proposal(tool: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": f"Watch {tool}",
        "description": "the agent should never call it",
        "logic": sigma(tool),
        "mitre_tags": ["T1059"],
        "test_cases": {"must_match": [tool_call(tool)], "must_not_match": [tool_call(tool + "-other")]},
    }
    body.update(over)
    return body


def create(c: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(ROUTE, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def ingest(c: httpx.Client, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    r = c.post("/api/v1/ingest", json=events, headers=headers)
    assert r.status_code in (200, 202), r.text


def stored(c: httpx.Client, headers: dict[str, str], event_id: str) -> bool:
    return c.get(f"/api/v1/events/{event_id}", headers=headers).status_code == 200


def wait_for(fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(0.05)
