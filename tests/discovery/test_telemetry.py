"""Agents folded out of one committed batch: one entry per agent, widened by later sightings."""

from __future__ import annotations

from typing import Any

from agentwatch.discovery.telemetry import agents_from_events
from agentwatch.events.model import Event
from agentwatch.events.normalize import normalize, oisp_data_validator


def _event(i: int, event_type: str, ts: str, data: dict[str, Any], session: str | None = None) -> Event:
    doc: dict[str, Any] = {
        "event_id": f"t-{i}",
        "event_type": event_type,
        "ts": ts,
        "host": {"hostname": "dev-1"},
        "process": {"pid": 40 + i, "name": "python3", "exe": "/usr/bin/python3"},
        "data": data,
    }
    if session:
        doc["session_id"] = session
    return normalize(doc, type_validator=oisp_data_validator)


def _llm(i: int, ts: str, model: str, provider: str = "openai") -> Event:
    return _event(i, "ai.request", ts, {"request_id": f"r{i}", "provider": {"name": provider}, "model": {"id": model}})


def _mcp(i: int, ts: str, tool: str, session: str) -> Event:
    return _event(i, "agent.tool_call", ts, {"tool": {"name": tool, "server": "github"}}, session)


def test_a_busy_client_is_one_entry_spanning_its_sightings_with_every_model_and_provider() -> None:
    batch = [
        _llm(1, "2026-01-01T00:00:05Z", "gpt-4o"),
        _llm(2, "2026-01-01T00:00:09Z", "gpt-4o"),  # the same sighting again, later
        _llm(3, "2026-01-01T00:00:01Z", "gpt-4o"),  # and earlier: the time only widens
        _llm(4, "2026-01-01T00:00:07Z", "claude-3", provider="anthropic"),
        _llm(5, "2026-01-01T00:00:08Z", "gpt-4o"),
    ]
    (agent,) = agents_from_events(batch)
    assert agent["protocol"] == "llm-client/python3" and agent["host"] == "dev-1"
    assert agent["_ts"] == batch[1].ts
    assert agent["metadata"]["models"] == ["claude-3", "gpt-4o"]
    assert agent["metadata"]["providers"] == ["anthropic", "openai"]
    # the first sighting is the entry's signal and its scalar facts
    assert agent["signals"][0]["evidence"]["event_id"] == "t-1" and agent["metadata"]["pid"] == 41


def test_an_mcp_server_gathers_its_tools_sessions_and_clients_from_repeated_calls() -> None:
    batch = [
        _mcp(1, "2026-01-01T00:00:01Z", "create_issue", "s-1"),
        _mcp(2, "2026-01-01T00:00:02Z", "create_issue", "s-1"),
        _mcp(3, "2026-01-01T00:00:04Z", "list_repos", "s-1"),
        _mcp(4, "2026-01-01T00:00:03Z", "create_issue", "s-2"),
        _mcp(5, "2026-01-01T00:00:06Z", "list_repos", "s-1"),
    ]
    (agent,) = agents_from_events(batch)
    assert agent["protocol"] == "mcp/github"
    assert agent["mcp_capabilities"]["tools"] == [{"name": "create_issue"}, {"name": "list_repos"}]
    assert agent["metadata"]["sessions"] == ["s-1", "s-2"] and agent["metadata"]["clients"] == ["python3"]
    assert agent["_ts"] == batch[4].ts
