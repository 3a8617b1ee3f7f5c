"""Shared helpers of the UEBA tests: event-time days of ordinary activity, and reads of the routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentwatch.events.entities import entity_id

# Monday 2026-01-05 00:00 UTC: day 0 of every baseline the tests build
DAY0 = datetime(2026, 1, 5, tzinfo=UTC)
WORK_HOURS = range(9, 18)  # 09:00-17:59 UTC
TOOLS = ("read_file", "search")

# small enough to build in one request: 24 events over 2 days of event time
UEBA = {
    "warmup_events": 24,
    "warmup_span_s": 2 * 86_400,
    "volume_min_events": 10,
    "volume_factor": 3.0,
}


def at(day: int, hour: int, minute: int = 0, base: datetime = DAY0) -> str:
    return (base + timedelta(days=day, hours=hour, minutes=minute)).isoformat().replace("+00:00", "Z")


def tool_event(host: str, ts: str, tool: str = "read_file", **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "agent.tool_call",
        "ts": ts,
        "host": {"hostname": host},
        "data": {"tool": {"name": tool}},
        **extra,
    }


def ordinary_days(host: str, days: int = 3, base: datetime = DAY0) -> list[dict[str, Any]]:
    """Two tool calls in each working hour of ``days`` days: 18 a day, 54 over three."""
    return [
        tool_event(host, at(d, h, m, base), TOOLS[i])
        for d in range(days)
        for h in WORK_HOURS
        for i, m in enumerate((10, 40))
    ]


def host_id(host: str) -> str:
    return entity_id("host", host)


def ingest(c: Any, events: list[dict[str, Any]]) -> None:
    r = c.post("/api/v1/ingest", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def anomalies(c: Any, host: str, **params: Any) -> list[dict[str, Any]]:
    r = c.get("/api/v1/ueba/anomalies", params={"entity_id": host_id(host), **params})
    assert r.status_code == 200, r.text
    return r.json()["anomalies"]


def ueba_alerts(c: Any, host: str) -> list[dict[str, Any]]:
    r = c.get("/api/v1/alerts", params={"type": "ueba", "entity": host})
    assert r.status_code == 200, r.text
    return r.json()["alerts"]
