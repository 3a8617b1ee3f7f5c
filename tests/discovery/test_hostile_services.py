"""Probed services are untrusted peers: what they answer must never abort or wedge a scan.

Each mock here answers with something a real service might send by accident or on purpose
(a card field of the wrong type, JSON nested a thousand levels deep, an SSE endpoint that is
not a URL, a certificate OpenSSL accepts but cryptography cannot parse). The scan must
complete, still report the well-behaved neighbour, and produce a result that serialises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import subprocess
import sys
import time
from pathlib import Path

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentwatch.discovery import slots
from agentwatch.discovery.allowlist import parse_targets
from agentwatch.discovery.scanner import Scanner
from tests.discovery.conftest import fast_settings
from tests.discovery.servers import Spec, serve
from tests.discovery.test_shared_slot import _tarpit
from tests.support import certs
from tests.support.server import run_server

SLOW_HOST = "127.0.0.32"  # a tarpit: a scan of it runs until stopped
CARD_HOST, MCP_HOST, BAD_URL_HOST, CTRL_URL_HOST, TAGS_HOST, GOOD_HOST, TLS_HOST = (
    f"127.0.0.{n}" for n in range(70, 77)
)
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _endpoint_stream(data: bytes):  # type: ignore[no-untyped-def]
    async def sse(_: Request) -> Response:
        async def events():  # type: ignore[no-untyped-def]
            yield b"event: endpoint\ndata: " + data + b"\n\n"
            await asyncio.sleep(5)

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/sse", sse)])


def _hostile_apps() -> list[Spec]:
    async def card(_: Request) -> Response:  # enough defining fields, but "skills" is not a list
        return JSONResponse({"name": "odd", "url": "http://odd", "capabilities": {}, "version": "1", "skills": 5})

    async def mcp(request: Request) -> Response:  # a valid handshake carrying 300 levels of nesting
        msg = await request.json()
        if msg.get("method") != "initialize":
            return JSONResponse({"jsonrpc": "2.0", "id": msg.get("id"), "result": {}})
        head = orjson.dumps({"jsonrpc": "2.0", "id": msg["id"]})[:-1]
        result = b',"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"deep","x":'
        return Response(head + result + _deep(300).encode() + b"}}}", media_type="application/json")

    async def tags(_: Request) -> Response:  # nesting deeper than Python's recursion limit allows to print
        return Response('{"models": [{"name": ' + _deep(990) + "}]}", media_type="application/json")

    async def models(_: Request) -> Response:
        return JSONResponse(MODELS)

    return [
        Spec(CARD_HOST, 8000, Starlette(routes=[Route("/.well-known/agent-card.json", card)])),
        Spec(MCP_HOST, 8000, Starlette(routes=[Route("/mcp", mcp, methods=["POST", "DELETE"])])),
        Spec(BAD_URL_HOST, 8000, _endpoint_stream(b"http://[::1")),
        Spec(CTRL_URL_HOST, 8000, _endpoint_stream(b"/messages?session=\x01")),
        Spec(TAGS_HOST, 8000, Starlette(routes=[Route("/api/tags", tags)])),
        Spec(GOOD_HOST, 8000, Starlette(routes=[Route("/v1/models", models)])),
    ]


def test_malformed_replies_cost_nothing_but_their_own_evidence(fleet):
    settings = fast_settings(ports=[8000])
    hosts = ",".join([CARD_HOST, MCP_HOST, BAD_URL_HOST, CTRL_URL_HOST, TAGS_HOST, GOOD_HOST])
    targets = parse_targets(hosts, allowed=settings.allowed_networks, max_hosts=16)
    with serve(_hostile_apps()):
        outcome = asyncio.run(Scanner(settings).scan(targets))
    found = {a["ip_address"]: a for a in outcome.agents}
    # the card without a skills list is still an A2A agent, and the neighbour is found
    assert found[CARD_HOST]["framework"] == "a2a" and found[CARD_HOST]["metadata"]["a2a_card"]["skills"] == []
    assert found[GOOD_HOST]["framework"] == "vllm"
    # over-deep JSON is not trusted as evidence; nothing it held reaches the result
    assert MCP_HOST not in found and TAGS_HOST not in found
    assert "services_failed" not in outcome.stats  # each probe coped on its own
    orjson.dumps(outcome.agents)  # the result can be stored and streamed


def _unparsable_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed certificate whose notBefore month is 13: OpenSSL serves it, cryptography refuses it."""
    san = x509.DNSName("odd.internal")
    certfile, keyfile = certs.self_signed(directory, "odd.internal", san, valid=dt.timedelta(days=1))
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    stamp = cert.not_valid_before_utc.strftime("%y%m%d%H%M%SZ").encode()
    bad = der.replace(b"\x17\x0d" + stamp, b"\x17\x0d" + stamp[:2] + b"13" + stamp[4:])
    assert bad != der
    badfile = directory / "bad.pem"
    badfile.write_text(ssl.DER_cert_to_PEM_cert(bad))
    return str(badfile), str(keyfile)


def test_a_certificate_cryptography_cannot_parse_is_recorded_not_fatal(fleet, tmp_path):
    certfile, keyfile = _unparsable_certificate(tmp_path)

    async def models(_: Request) -> Response:
        return JSONResponse(MODELS)

    app = Starlette(routes=[Route("/v1/models", models)])
    settings = fast_settings(ports=[8443])
    targets = parse_targets(TLS_HOST, allowed=settings.allowed_networks, max_hosts=1)
    with serve([Spec(TLS_HOST, 8443, app, ssl_certfile=certfile, ssl_keyfile=keyfile)]):
        outcome = asyncio.run(Scanner(settings).scan(targets))
    [agent] = outcome.agents
    assert agent["protocol"] == "https" and agent["framework"] == "vllm"
    facts = agent["tls_fingerprint"]
    assert facts["protocol"].startswith("TLS") and len(facts["sha256"]) == 64
    assert "certificate_error" in facts and "subject" not in facts


def test_stop_right_after_a_slow_claim_does_not_wedge_the_tenant(settings, fleet, monkeypatch):
    original = slots.claim

    def slow_claim(*args: object, **kw: object) -> None:
        time.sleep(0.4)  # a busy store: the slot and the scan row take a while to be written
        original(*args, **kw)

    monkeypatch.setattr(slots, "claim", slow_claim)
    with (
        serve([Spec(SLOW_HOST, 8000, raw=_tarpit)]),
        run_server(settings.model_copy(update={"discovery": fast_settings()})) as srv,
        srv.client() as c,
    ):
        first = c.post("/api/scan", params={"network": SLOW_HOST})
        assert first.status_code == 200
        assert c.post("/api/scan/stop").status_code == 200
        deadline = time.monotonic() + 10
        while (status := c.get("/api/scan/status").json())["status"] != "idle":
            assert time.monotonic() < deadline, f"the stopped scan never ended: {status}"
            time.sleep(0.05)
        assert status["last_scan"]["scan_id"] == first.json()["scan_id"]
        assert status["last_scan"]["status"] == "stopped"
        assert c.get(f"/api/scan/{first.json()['scan_id']}").json()["error"] == "scan stopped"
        again = c.post("/api/scan", params={"network": SLOW_HOST})
        assert again.status_code == 200, again.text
        assert c.post("/api/scan/stop").json()["stopped"] is True


def test_cli_names_the_option_of_an_invalid_value():
    exe = Path(sys.executable).parent / "agentwatch"
    for args, option in ((["--ports", "70000"], "--ports"), (["--timeout", "0"], "--timeout")):
        r = subprocess.run([str(exe), "scan", "127.0.0.99", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert option in r.stderr and "Traceback" not in r.stderr


def test_a_probe_failing_on_one_service_loses_that_service_only(fleet, monkeypatch):
    """The safety net under every probe: an unforeseen error is counted in the stats, the scan goes on."""
    from agentwatch.discovery import probes

    async def broken(http, service):  # type: ignore[no-untyped-def]
        if service.host == CARD_HOST:
            raise KeyError("a reply nobody foresaw")
        return []

    monkeypatch.setitem(probes.DETECTORS, "a2a", (broken,))
    settings = fast_settings(ports=[8000])
    targets = parse_targets(f"{CARD_HOST},{GOOD_HOST}", allowed=settings.allowed_networks, max_hosts=4)
    with serve(_hostile_apps()):
        outcome = asyncio.run(Scanner(settings).scan(targets))
    assert [a["ip_address"] for a in outcome.agents] == [GOOD_HOST]
    assert outcome.stats["services_failed"] == 1
    assert outcome.stats["service_errors"] == [
        {"host": CARD_HOST, "port": 8000, "error": "KeyError: 'a reply nobody foresaw'"}
    ]
