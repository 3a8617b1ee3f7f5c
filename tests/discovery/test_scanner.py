"""The scanner against real mock agents and decoys on 127.0.0.x: what it finds, at which level, and what it must not."""

from __future__ import annotations

import asyncio

import pytest

from agentwatch.discovery.allowlist import parse_targets
from agentwatch.discovery.report import agent_id
from agentwatch.discovery.scanner import Scanner
from tests.discovery import mocks
from tests.discovery.conftest import fast_settings


@pytest.fixture(scope="module")
def result(fleet):
    settings = fast_settings()
    targets = parse_targets(",".join(mocks.HOSTS), allowed=settings.allowed_networks, max_hosts=64)
    outcome = asyncio.run(Scanner(settings).scan(targets))
    return outcome


def by_host(outcome):
    return {(a["ip_address"], a["port"]): a for a in outcome.agents}


def test_finds_exactly_the_mock_agents_at_the_expected_levels(result):
    found = {
        (a["ip_address"], a["port"], a["protocol"], a["framework"], a["agent_type"], a["confidence_level"])
        for a in result.agents
    }
    expected = {(e.host, e.port, e.protocol, e.framework, e.agent_type, e.level) for e in mocks.AGENTS}
    assert found == expected


def test_no_decoy_is_reported(result):
    reported = {a["ip_address"] for a in result.agents}
    assert not reported & set(mocks.DECOYS)
    # the decoys were reachable and probed, not just missed: every decoy port was open
    assert result.stats["open_ports"] == len(mocks.AGENTS) + len(mocks.DECOYS)


def test_ids_are_stable_uuid5_of_address_port_protocol(result):
    for a in result.agents:
        assert a["id"] == agent_id(a["ip_address"], a["port"], a["protocol"])


def test_documented_agent_and_signal_shapes(result):
    a = by_host(result)[("127.0.0.2", 11434)]
    for key in ("id", "host", "ip_address", "port", "agent_type", "framework", "status", "confidence_score",
                "confidence_level", "signal_count", "signals", "agentpin_identity", "mcp_capabilities",
                "tls_fingerprint", "first_seen", "last_seen", "metadata"):  # fmt: skip
        assert key in a
    assert a["status"] == "verified" and a["confidence_score"] == 1.0
    assert a["signal_count"] == len(a["signals"]) == 3
    sig = next(s for s in a["signals"] if s["signal_type"] == "ollama_tags")
    assert set(sig) == {"detector", "signal_type", "description", "confidence", "evidence", "timestamp"}
    assert sig["evidence"]["models"] == ["llama3.2:3b", "qwen2.5:7b"]
    assert sig["timestamp"].endswith("Z")


def test_mcp_streamable_session_handshake_and_enumeration(result, fleet):
    a = by_host(result)[("127.0.0.4", 3000)]
    mcp = a["mcp_capabilities"]
    assert mcp["transport"] == "streamable-http" and mcp["endpoint"] == "/mcp"
    assert mcp["protocol_version"] == "2025-06-18" and mcp["session"] is True
    assert mcp["server_info"] == {"name": "files-mcp", "version": "1.4.0"}
    # the tools list came in two pages (nextCursor) and only works after notifications/initialized
    assert [t["name"] for t in mcp["tools"]] == ["read_file", "search_docs", "run_query"]
    assert mcp["resources"] == [{"uri": "file:///srv/docs/readme.md", "name": "readme", "mimeType": "text/markdown"}]
    assert [p["name"] for p in mcp["prompts"]] == ["summarize"]
    assert fleet.mcp_streamable.deleted >= 1  # the session was closed with DELETE
    assert not fleet.mcp_streamable.sessions


def test_mcp_legacy_sse_transport(result):
    a = by_host(result)[("127.0.0.5", 3001)]
    assert a["mcp_capabilities"]["transport"] == "sse"
    assert [t["name"] for t in a["mcp_capabilities"]["tools"]] == ["read_file", "search_docs", "run_query"]
    assert a["status"] == "verified"


def test_agentpin_signature_verified_and_forgery_refused(result):
    good = by_host(result)[("127.0.0.7", 8080)]["agentpin_identity"]
    assert good["verified"] is True and good["entity"] == "acme.internal"
    assert good["agents"][0]["agent_id"] == "urn:agentpin:acme.internal:analyst"
    forged = by_host(result)[("127.0.0.13", 8080)]
    assert forged["agentpin_identity"]["verified"] is False
    assert forged["agentpin_identity"]["verification"] == "signing key is not published in the discovery document"
    assert "agentpin_signature_verified" not in {s["signal_type"] for s in forged["signals"]}


def test_tls_facts_recorded(result):
    a = by_host(result)[("127.0.0.11", 8443)]
    tls = a["tls_fingerprint"]
    assert a["protocol"] == "https"
    assert tls["protocol"] in ("TLSv1.3", "TLSv1.2")
    assert tls["self_signed"] is True and tls["san"] == ["llm.internal"] and len(tls["sha256"]) == 64


def test_breakdown_explains_the_score(result):
    a = by_host(result)[("127.0.0.8", 8000)]
    bd = a["score_breakdown"]
    assert bd["method"] == "noisy-or"
    weights = [s["weight"] for s in bd["signals"] if s["counted"]]
    expected = 1.0
    for w in weights:
        expected *= 1 - w
    assert a["confidence_score"] == pytest.approx(1 - expected, abs=1e-4)
    assert "confirmation" in bd["rules_applied"]  # above 0.9 but one detector only: stays high


def test_detector_selection_limits_the_probes(fleet):
    settings = fast_settings()
    targets = parse_targets("127.0.0.2,127.0.0.4", allowed=settings.allowed_networks, max_hosts=8)
    outcome = asyncio.run(Scanner(settings, ["port_scanner", "ollama"]).scan(targets))
    assert [(a["ip_address"], a["framework"]) for a in outcome.agents] == [("127.0.0.2", "ollama")]


def test_mcp_over_raw_tcp(result):
    a = by_host(result)[("127.0.0.14", 3001)]
    assert a["protocol"] == "tcp" and a["mcp_capabilities"]["transport"] == "tcp"
    assert [t["name"] for t in a["mcp_capabilities"]["tools"]] == ["read_file", "search_docs", "run_query"]
    assert a["mcp_capabilities"]["server_info"]["name"] == "files-mcp"
