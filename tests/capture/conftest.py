"""Fixtures of the capture tests: a fake provider upstream on loopback and a gateway in front of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentwatch.config import Settings
from tests.capture.fake_upstream import FakeUpstream, fake_upstream
from tests.support.server import RunningServer, run_server


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream("127.0.0.2") as fake:
        yield fake


def gateway_settings(settings: Settings, upstream: FakeUpstream, **capture: Any) -> Settings:
    """``settings`` with every provider route pointed at the fake upstream (loopback explicitly allowed)."""
    routes = {
        "openai": {"provider": "openai", "base_url": upstream.url},
        "anthropic": {"provider": "anthropic", "base_url": upstream.url},
        "gemini": {"provider": "gemini", "base_url": upstream.url},
        "ollama": {"provider": "ollama", "base_url": upstream.url},
        "groq": {"provider": "openai_compatible", "base_url": upstream.url},
    }
    doc = {"allow_loopback_upstreams": True, "routes": routes, **capture}
    update: dict[str, Any] = {"capture": type(settings.capture).model_validate(doc)}
    # The request-audit middleware holds every POST response until its audit row is written,
    # which turns a relayed stream into one late body; the gateway (data plane) is kept out of
    # request auditing here, as it must be in the middleware itself (see docs/capture.md).
    audit = getattr(settings.auth, "audit", None)
    if audit is not None:
        update["auth"] = settings.auth.model_copy(update={"audit": audit.model_copy(update={"requests": False})})
    return settings.model_copy(update=update)


@pytest.fixture
def gateway(settings: Settings, upstream: FakeUpstream) -> Iterator[RunningServer]:
    with run_server(gateway_settings(settings, upstream)) as srv:
        yield srv


def wait_events(client: httpx.Client, event_type: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The stored events of a type, once at least ``count`` of them are there (recording is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        events = client.get("/api/events", params={"type": event_type, "limit": 1000}).json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return sorted(events, key=lambda e: e["ts"])
        time.sleep(0.05)


def by_type(client: httpx.Client, counts: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    return {t: wait_events(client, t, n) for t, n in counts.items()}
