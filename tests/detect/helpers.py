"""Shared helpers for the detection tests: settings, OISP event builders, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentwatch.config import Settings
from agentwatch.detect.settings import DetectionSettings


def with_detection(settings: Settings, **kw: Any) -> Settings:
    """``settings`` with detection options; the bundled ATR set is off unless asked for (it loads slowly)."""
    kw.setdefault("atr_bundled", False)
    return settings.model_copy(update={"detection": DetectionSettings(**kw)})


def tool_call(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "data": {"tool": {"name": "run_shell", "type": "shell"}, "arguments": {"command": command}},
        **extra,
    }


def llm_request(text: str, *, provider: str = "openai", model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "ai.request",
        "data": {
            "provider": {"name": provider},
            "model": {"id": model},
            "messages": [{"role": "user", "content": text}],
        },
        **extra,
    }


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``fn`` until it returns something truthy (alerts are recorded just after commit)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)


DETECTION_TYPES = "atr,builtin,sigma,correlation"


def alerts(client: Any, **params: Any) -> dict[str, Any]:
    """The detection engine's alerts (other capabilities, e.g. discovery, raise their own types)."""
    params.setdefault("type", DETECTION_TYPES)
    r = client.get("/api/v1/alerts", params=params)
    assert r.status_code == 200, r.text
    return r.json()
