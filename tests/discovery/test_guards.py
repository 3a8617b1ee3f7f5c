"""Guardrails and rules: target parsing, scoring rules, body caps, redirects, catch-all servers, the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from agentwatch.discovery.allowlist import TargetError, parse_targets
from agentwatch.discovery.scanner import Scanner
from agentwatch.discovery.scoring import score_service
from agentwatch.discovery.settings import DiscoverySettings
from agentwatch.discovery.signals import Service, Signal
from tests.discovery.conftest import fast_settings
from tests.discovery.servers import Spec, serve

ALLOW = DiscoverySettings().allowed_networks


def test_targets_expand_and_refuse():
    assert parse_targets("127.0.0.0/30", allowed=ALLOW, max_hosts=10).hosts() == ["127.0.0.1", "127.0.0.2"]
    assert parse_targets("127.0.0.9/32, 127.0.0.9 ::1", allowed=ALLOW, max_hosts=10).hosts() == ["127.0.0.9", "::1"]
    assert parse_targets("localhost", allowed=ALLOW, max_hosts=1).hosts() == ["127.0.0.1"]
    cases = [
        ("127.0.0.0/24", ALLOW, 100, "network: more than 100 hosts"),
        ("127.0.0.0/24", ["127.0.0.0/25"], 1000, "outside the allowed networks"),
        ("1.1.1.1", ALLOW, 10, "1.1.1.1 is outside the allowed networks"),
        ("224.0.0.1", ["0.0.0.0/0"], 10, "not a unicast network"),
        ("127.0.0.1; rm -rf /", ALLOW, 10, "is not an IP address"),
        ("", ALLOW, 10, "network: is required"),
        (", ,", ALLOW, 10, "network: names no address"),
    ]
    for text, allowed, cap, message in cases:
        with pytest.raises(TargetError) as info:
            parse_targets(text, allowed=allowed, max_hosts=cap)
        assert message in str(info.value), text


def _sig(detector: str, grade: str, **kw: object) -> Signal:
    return Signal(detector, f"{detector}_{grade}", "test", grade, {}, **kw)


def test_scoring_rules():
    settings = DiscoverySettings()
    port_only = Service("127.0.0.1", 8000, signals=[_sig("port_scanner", "low", needs_corroboration=True)])
    s = score_service(port_only, settings)
    assert not s.reported and s.score == 0 and "needs_corroboration" in s.breakdown["rules_applied"]

    spa = Service("127.0.0.1", 8080, catch_all=True, catch_all_evidence={"path": "/aw-x", "status": 200})
    spa.signals = [_sig("endpoint_prober", "high", content_verified=False), _sig("openai_api", "medium")]
    s = score_service(spa, settings)
    assert s.score == 0.5 and s.level == "medium"
    assert [e["counted"] for e in s.breakdown["signals"]] == [False, True]
    assert s.breakdown["signals"][0]["rule"] == "catch_all" and s.breakdown["catch_all"]["status"] == 200

    one_detector = Service("127.0.0.1", 1, signals=[_sig("endpoint_prober", "high"), _sig("endpoint_prober", "high")])
    s = score_service(one_detector, settings)
    assert s.score == pytest.approx(0.96) and s.level == "high" and "confirmation" in s.breakdown["rules_applied"]
    two = Service("127.0.0.1", 1, signals=[_sig("endpoint_prober", "high"), _sig("openai_api", "high")])
    assert score_service(two, settings).level == "confirmed"

    heavier = DiscoverySettings(weights={"medium": 0.9})
    assert score_service(Service("h", 1, signals=[_sig("a2a", "medium")]), heavier).score == 0.9


def _guard_apps() -> list[Spec]:
    big = {
        "object": "list",
        "data": [{"id": f"model-{i:06d}", "object": "model", "owned_by": "vllm"} for i in range(400)],
    }

    async def oversized(_: Request) -> Response:
        return JSONResponse(big)

    async def redirect(_: Request) -> Response:
        return RedirectResponse("http://127.0.0.3:8000/v1/models", 302)

    async def front(request: Request) -> Response:
        """A catch-all front end passing two paths to an LLM server behind it."""
        if request.url.path == "/v1/models":
            return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})
        if request.url.path == "/invoke":
            return JSONResponse({"detail": "Method Not Allowed"}, 405) if request.method == "GET" else JSONResponse({})
        return HTMLResponse("<html><div id=root></div></html>")

    proxy = Starlette(routes=[Route("/{p:path}", front, methods=["GET", "POST"])])
    return [
        Spec("127.0.0.50", 8000, Starlette(routes=[Route("/v1/models", oversized)])),
        Spec("127.0.0.51", 8000, Starlette(routes=[Route("/v1/models", redirect)])),
        Spec("127.0.0.52", 8000, proxy),
    ]


def test_body_cap_redirects_and_catch_all(fleet):
    settings = fast_settings(ports=[8000], max_response_bytes=4096)
    targets = parse_targets("127.0.0.50,127.0.0.51,127.0.0.52", allowed=settings.allowed_networks, max_hosts=8)
    with serve(_guard_apps()):
        outcome = asyncio.run(Scanner(settings).scan(targets))
    # .50: the model list is larger than the cap, so it is cut and not trusted; .51: the redirect is not followed
    assert [a["ip_address"] for a in outcome.agents] == ["127.0.0.52"]
    agent = outcome.agents[0]
    rows = {(e["signal_type"], e["confidence"]): e for e in agent["score_breakdown"]["signals"]}
    # GET /invoke answers 405 (a real POST route) but the server is a catch-all: status-only evidence is dropped
    assert rows[("framework_endpoint_match", "low")]["rule"] == "catch_all"
    assert rows[("openai_models_endpoint", "high")]["counted"] is True
    assert agent["score_breakdown"]["catch_all"]["status"] == 200
    assert agent["framework"] == "vllm" and agent["confidence_level"] == "high"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "agentwatch"
    return subprocess.run([str(exe), "scan", *args], capture_output=True, text=True, timeout=120)


def test_cli_scans_without_a_server(fleet, tmp_path):
    out = tmp_path / "scan.json"
    r = _cli("127.0.0.2,127.0.0.20", "--ports", "11434,8080", "--format", "json", "-o", str(out), "--timeout", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [(a["ip_address"], a["framework"]) for a in doc["agents"]] == [("127.0.0.2", "ollama")]
    sarif = _cli("127.0.0.2", "--ports", "11434", "--format", "sarif", "--timeout", "2")
    run = json.loads(sarif.stdout)["runs"][0]
    assert json.loads(sarif.stdout)["version"] == "2.1.0"
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "http://127.0.0.2:11434/"
    refused = _cli("192.0.2.0/24")
    assert refused.returncode == 2 and "outside the allowed networks" in refused.stderr
