"""The scan API on a real server and database: scans, history, inventory diff, change alerts, settings, SSE."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import orjson
import pytest

from agentwatch.discovery.report import agent_id
from tests.discovery import mocks
from tests.discovery.conftest import fast_settings
from tests.discovery.receivers import Receiver, free_port
from tests.discovery.servers import Spec, serve
from tests.support.server import run_server

TARPIT = "127.0.0.30"


@pytest.fixture
def api(settings, fleet):
    with run_server(settings.model_copy(update={"discovery": fast_settings()})) as srv:
        yield srv


def wait_idle(c, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while c.get("/api/scan/status").json()["status"] != "idle":
        assert time.monotonic() < deadline, "scan did not finish"
        time.sleep(0.05)


def scan(c, network: str, detectors: str | None = None) -> dict:
    params = {"network": network, **({"detectors": detectors} if detectors else {})}
    r = c.post("/api/scan", params=params)
    assert r.status_code == 200, r.text
    wait_idle(c)
    return c.get(f"/api/scan/{r.json()['scan_id']}").json()


def test_scan_results_history_and_inventory(api):
    with api.client() as c:
        assert c.get("/api/scan/results").status_code == 404
        r = c.post("/api/scan", params={"network": "127.0.0.2,127.0.0.4,127.0.0.20"})
        assert r.status_code == 200 and r.json()["status"] == "started"
        scan_id = r.json()["scan_id"]
        wait_idle(c)
        result = c.get("/api/scan/results").json()
        assert result["scan_id"] == scan_id and result["status"] == "completed"
        assert result["target_network"] == "127.0.0.2,127.0.0.4,127.0.0.20"
        assert [(a["ip_address"], a["framework"]) for a in result["agents"]] == [
            ("127.0.0.2", "ollama"),
            ("127.0.0.4", "mcp"),
        ]
        assert result["summary"]["total_agents"] == 2
        assert result["summary"]["by_confidence"] == {"low": 0, "medium": 0, "high": 0, "confirmed": 2}
        assert result["summary"]["by_status"] == {"detected": 0, "suspected": 0, "verified": 2}
        assert result["diff"]["new"] and not result["diff"]["gone"]
        assert c.get(f"/api/scan/{scan_id}").json() == result
        history = c.get("/api/scan/history", params={"limit": 10}).json()
        assert history["total"] == 1 and history["scans"][0]["scan_id"] == scan_id
        agents = c.get("/api/agents").json()
        assert agents["total"] == 2
        assert {a["id"] for a in agents["agents"]} == {
            agent_id("127.0.0.2", 11434, "http"),
            agent_id("127.0.0.4", 3000, "http"),
        }
        assert c.get("/api/scan/00000000-0000-0000-0000-000000000000").status_code == 404
        assert c.get("/api/scan/history", params={"limit": 0}).status_code == 400
        health = c.get("/api/health").json()
        assert health["scanner"]["status"] == "idle" and health["scanner"]["last_scan_id"] == scan_id
        assert health["signatures"]["frameworks"] > 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"network": "8.8.8.0/24"}, "network: 8.8.8.0/24 is outside the allowed networks"),
        ({"network": "10.0.0.0/8"}, "network: more than 1024 hosts (the per-scan host cap)"),
        ({"network": "scanme.example.com"}, "is not an IP address or CIDR network"),
        ({}, "network: is required"),
        ({"network": "127.0.0.2", "detectors": "port_scanner,telepathy"}, "detectors: unknown detector 'telepathy'"),
        ({"hosts": "8.8.8.8"}, "hosts: 8.8.8.8 is outside the allowed networks"),
        ({"network": "127.0.0.2", "hosts": "10.0.0.0/8"}, "hosts: more than 1024 hosts"),
    ],
)
def test_refusals_happen_before_any_scan(api, params, message):
    with api.client() as c:
        r = c.post("/api/scan", params=params)
        assert r.status_code == 400 and message in r.json()["error"]["message"]
        assert c.get("/api/scan/status").json()["status"] == "idle"
        assert c.get("/api/scan/history").json()["total"] == 0


async def _tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.sleep(60)  # accepts and never answers: every probe waits for its timeout
    except asyncio.CancelledError:
        pass
    finally:
        writer.close()


def test_second_scan_conflicts_and_stop_is_quick(settings):
    slow = fast_settings(connect_timeout=5.0, read_timeout=20.0, banner_timeout=0.0)
    with (
        serve([Spec(TARPIT, 8000, raw=_tarpit)]),
        run_server(settings.model_copy(update={"discovery": slow})) as srv,
        srv.client() as c,
    ):
        first = c.post("/api/scan", params={"network": TARPIT})
        assert first.status_code == 200
        again = c.post("/api/scan", params={"network": "127.0.0.2"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"
        assert again.json()["error"]["details"]["scan_id"] == first.json()["scan_id"]
        time.sleep(0.3)
        started = time.monotonic()
        stopped = c.post("/api/scan/stop")
        elapsed = time.monotonic() - started
        assert stopped.status_code == 200 and stopped.json()["stopped"] is True
        assert elapsed < 1.0
        assert c.get("/api/scan/status").json()["status"] == "idle"
        doc = c.get(f"/api/scan/{first.json()['scan_id']}").json()
        assert doc["status"] == "stopped" and doc["error"] == "scan stopped"
        assert c.post("/api/scan/stop").status_code == 409


def test_sse_stream_uses_event_names(api):
    events: list[tuple[str, dict]] = []
    with (
        api.client() as c,
        c.stream("GET", "/api/scan/stream", params={"network": "127.0.0.2,127.0.0.4,127.0.0.21"}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
                name = None
    names = [n for n, _ in events]
    assert names[0] == "scan_started" and names[-1] == "scan_complete"
    assert names.count("agent_detected") == 2 and "progress" in names
    started = events[0][1]
    assert set(started) == {"scan_id", "detectors", "target"}
    detected = sorted(d["ip_address"] for n, d in events if n == "agent_detected")
    assert detected == ["127.0.0.2", "127.0.0.4"]
    assert len(events[-1][1]["agents"]) == 2 and events[-1][1]["scan_id"] == started["scan_id"]


def _verify(req: dict, secret: bytes) -> dict:
    ts = req["headers"]["x-agentwatch-timestamp"]
    good = "sha256=" + hmac.new(secret, ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["x-agentwatch-signature"] == good
    return orjson.loads(req["body"])


def test_inventory_diff_and_alerts_on_change_only(api):
    """Scan twice: the MCP server gains a tool and Ollama disappears; alerts fire for changes only."""
    receiver = Receiver()
    rport = free_port("127.0.0.61")
    ollama_host, mcp_host = "127.0.0.40", "127.0.0.41"
    state = mocks.McpState()
    with (
        serve([Spec("127.0.0.61", rport, receiver.app()), Spec(mcp_host, 3000, mocks.mcp_streamable(state))]),
        api.client() as c,
    ):
        put = c.put(
            "/api/settings",
            json={"alert_enabled": True, "webhook_url": f"http://127.0.0.61:{rport}/hook", "webhook_secret": "k3y"},
        )
        assert put.status_code == 200 and set(put.json()["updated"]) == {
            "alert_enabled",
            "webhook_url",
            "webhook_secret",
        }
        target = f"{ollama_host},{mcp_host}"
        with serve([Spec(ollama_host, 11434, mocks.ollama())]):
            first = scan(c, target)
        assert [a["framework"] for a in first["agents"]] == ["ollama", "mcp"]
        assert len(first["diff"]["new"]) == 2
        mcp_id = agent_id(mcp_host, 3000, "http")
        ollama_id = agent_id(ollama_host, 11434, "http")
        _wait_for(lambda: len(receiver.requests) >= 1)
        sent = [a for req in receiver.requests for a in _verify(req, b"k3y")["alerts"]]
        assert sorted(a["rule_id"] for a in sent) == ["discovery.new_agent", "discovery.new_agent"]
        assert all(a["type"] == "discovery" for a in sent)

        state.tools.append("delete_repository")
        second = scan(c, target)
        assert [a["id"] for a in second["agents"]] == [mcp_id]  # the same id as in the first scan
        assert second["diff"]["new"] == []
        assert [(d["id"], d["new_tools"]) for d in second["diff"]["changed"]] == [(mcp_id, ["delete_repository"])]
        assert [d["id"] for d in second["diff"]["gone"]] == [ollama_id]
        _wait_for(lambda: len(receiver.requests) >= 2)
        sent2 = [a for a in _verify(receiver.requests[1], b"k3y")["alerts"]]
        assert sorted(a["rule_id"] for a in sent2) == ["discovery.agent_gone", "discovery.new_mcp_tool"]
        tool_alert = next(a for a in sent2 if a["rule_id"] == "discovery.new_mcp_tool")
        assert tool_alert["details"]["tool"] == "delete_repository" and tool_alert["severity"] == 6

        third = scan(c, target)
        assert third["diff"] == {"new": [], "changed": [], "gone": []}
        time.sleep(0.5)
        assert len(receiver.requests) == 2  # nothing changed, nothing sent

        agents = c.get("/api/agents", params={"include_gone": True}).json()["agents"]
        gone = {a["id"]: a["gone"] for a in agents}
        assert gone == {mcp_id: False, ollama_id: True}
        mcp = next(a for a in agents if a["id"] == mcp_id)
        assert mcp["first_seen"] == first["agents"][1]["first_seen"] and mcp["last_seen"] > mcp["first_seen"]


def test_a_scan_with_fewer_detectors_does_not_call_an_agent_gone(api):
    host = "127.0.0.42"
    with serve([Spec(host, 11434, mocks.ollama())]), api.client() as c:
        first = scan(c, host)
        assert [a["framework"] for a in first["agents"]] == ["ollama"]
        narrow = scan(c, host, detectors="port_scanner,mcp_detector")  # cannot recognise Ollama
        assert narrow["agents"] == [] and narrow["diff"]["gone"] == []
        assert scan(c, host)["diff"] == {"new": [], "changed": [], "gone": []}
    with api.client() as c:  # the mock is stopped: a scan with every detector now calls it gone
        after = scan(c, host)
        assert [d["framework"] for d in after["diff"]["gone"]] == ["ollama"]


def _wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_settings_masking_validation_and_test_alert(api):
    receiver = Receiver()
    rport = free_port("127.0.0.62")
    with serve([Spec("127.0.0.62", rport, receiver.app())]), api.client() as c:
        bad = [
            ({"webhook_url": "http://169.254.169.254/latest/meta-data"}, "webhook_url: host '169.254.169.254' refused"),
            ({"outputs": [{"kind": "slack", "url": "gopher://127.0.0.62/"}]}, "outputs[0].url: scheme must be one of"),
            ({"outputs": [{"kind": "pagerduty"}]}, "outputs[0].routing_key: is required"),
            ({"smtp_host": "mail"}, "smtp_host: Extra inputs are not permitted"),
            ({"min_severity": 11}, "min_severity: Input should be less than or equal to 10"),
            ({"webhook_headers": {"X-Team": "a\r\nInjected: 1"}}, "webhook_headers.X-Team: must be a string"),
            ({"webhook_headers": {"Bad Name": "v"}}, "webhook_headers: names must be"),
        ]
        for body, message in bad:
            r = c.put("/api/settings", json=body)
            assert r.status_code == 400 and message in r.json()["error"]["message"], (body, r.text)
        assert c.post("/api/settings/test").status_code == 400  # nothing configured yet
        url = f"http://127.0.0.62:{rport}"
        spec = {
            "kind": "webhook",
            "name": "soc",
            "url": f"{url}/out",
            "secret": "s1",
            "headers": {"Authorization": "Bearer t0k"},
        }
        r = c.put(
            "/api/settings", json={"outputs": [spec, {"kind": "slack", "url": f"{url}/slack", "min_severity": 9}]}
        )
        assert r.status_code == 200
        shown = c.get("/api/settings").json()
        assert shown["outputs"][0]["secret"] == "********" and shown["outputs"][0]["headers"] == {
            "Authorization": "********"
        }
        assert "s1" not in json.dumps(shown) and "t0k" not in json.dumps(shown)
        # a webhook's path is its credential (Slack, Teams): readers see the host only
        assert [o["url"] for o in shown["outputs"]] == [f"{url}/***", f"{url}/***"]
        assert "/slack" not in json.dumps(shown) and "/out" not in json.dumps(shown)
        # sending the masked form back keeps the real secret and URLs
        assert c.put("/api/settings", json={"outputs": shown["outputs"]}).json()["updated"] == []
        # each change is in the hash-chained audit log with the names of what changed, never the values
        audited = api.aw.audit.query(action="PUT /api/settings", limit=100)
        assert [row["details"] for row in audited if row["status"] == 200] == [{}, {"changed": ["outputs"]}]
        assert "s1" not in json.dumps(audited) and "t0k" not in json.dumps(audited)
        assert api.aw.audit.verify().ok
        test = c.post("/api/settings/test").json()
        assert test["ok"] is True and [o["sent"] for o in test["outcomes"]] == [1, 1]
        by_path = {req["path"]: req for req in receiver.requests}
        assert _verify(by_path["/out"], b"s1")["alerts"][0]["rule_id"] == "discovery.test"
        assert by_path["/out"]["headers"]["authorization"] == "Bearer t0k"
        assert "agentwatch test alert" in by_path["/slack"]["body"].decode()
        assert c.put("/api/settings", json={"webhook_url": f"{url}/hook/T0KEN"}).json()["updated"] == ["webhook_url"]
        shown = c.get("/api/settings").json()
        assert shown["webhook_url"] == f"{url}/***"
        assert c.put("/api/settings", json={"webhook_url": shown["webhook_url"]}).json()["updated"] == []
        assert api.aw.components["discovery"].alert_settings()["webhook_url"] == f"{url}/hook/T0KEN"


def test_agents_seen_in_telemetry_join_the_inventory(api):
    from tests.conftest import OISP_EXAMPLES

    request = json.loads((OISP_EXAMPLES / "ai-request-openai.json").read_text())
    call = json.loads((OISP_EXAMPLES / "agent-tool-call.json").read_text())
    call["data"]["tool"] = {"name": "create_issue", "provider": "mcp", "server": "github"}
    with api.client() as c:
        assert c.post("/api/v1/ingest", json=[request, call]).json()["stored"] == 2
        _wait_for(lambda: c.get("/api/agents", params={"source": "telemetry"}).json()["total"] == 2)
        agents = {a["agent_type"]: a for a in c.get("/api/agents", params={"source": "telemetry"}).json()["agents"]}
        client = agents["llm_client"]
        assert client["protocol"] == f"llm-client/{request['process']['name']}"
        assert client["ip_address"] == request["host"]["hostname"]
        assert client["metadata"]["providers"] == [request["data"]["provider"]["name"]]
        server = agents["mcp_server"]
        assert server["protocol"] == "mcp/github" and server["mcp_capabilities"]["tools"] == [{"name": "create_issue"}]
        assert server["id"] == agent_id(call["host"]["hostname"], 0, "mcp/github")


def test_server_side_schedule_scans_on_its_own(settings, fleet):
    scheduled = fast_settings(schedule_network="127.0.0.2", schedule_every_s=60)
    with run_server(settings.model_copy(update={"discovery": scheduled})) as srv, srv.client() as c:
        _wait_for(
            lambda: (
                c.get("/api/scan/history").json()["total"] == 1 and c.get("/api/scan/status").json()["status"] == "idle"
            )
        )
        result = c.get("/api/scan/results").json()
        assert result["target_network"] == "127.0.0.2" and [a["framework"] for a in result["agents"]] == ["ollama"]
        assert c.get("/api/health").json()["scanner"]["schedule"] == {"network": "127.0.0.2", "every_seconds": 60}


def test_routes_require_credentials_when_auth_is_on(tmp_path, fleet):
    from agentwatch.config import Settings

    secured = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'aw.db'}", discovery=fast_settings())
    with run_server(secured) as srv, srv.client() as c:
        routes = [
            ("POST", "/api/scan?network=127.0.0.2"),
            ("GET", "/api/scan/status"),
            ("GET", "/api/agents"),
            ("GET", "/api/settings"),
            ("PUT", "/api/settings"),
            ("POST", "/api/settings/test"),
        ]
        for method, path in routes:
            r = c.request(method, path)
            assert r.status_code == 401, (method, path, r.status_code)
        assert c.get("/api/scan/history").json()["error"]["code"] == "UNAUTHORIZED"


def test_a_busy_agent_is_rewritten_only_when_it_shows_something_new(api):
    from tests.conftest import OISP_EXAMPLES

    first = json.loads((OISP_EXAMPLES / "ai-request-openai.json").read_text())

    def again(i: int, model: str | None = None) -> dict:
        doc = json.loads(json.dumps(first))
        doc["event_id"] = f"{first['event_id']}-again-{i}"
        doc["ts"] = f"2030-01-01T00:00:0{i}Z"  # later than the first sighting
        if model:
            doc["data"]["model"]["id"] = model
        return doc

    def client(c) -> dict:
        (agent,) = c.get("/api/agents", params={"source": "telemetry"}).json()["agents"]
        return agent

    with api.client() as c:
        c.post("/api/v1/ingest", json=[first])
        _wait_for(lambda: c.get("/api/agents", params={"source": "telemetry"}).json()["total"] == 1)
        seen_first = client(c)["last_seen"]
        c.post("/api/v1/ingest", json=[again(1)])  # nothing new within the refresh interval: not rewritten
        time.sleep(0.5)
        assert client(c)["last_seen"] == seen_first
        c.post("/api/v1/ingest", json=[again(2, model="gpt-new")])  # a new model is written at once
        _wait_for(lambda: "gpt-new" in client(c)["metadata"]["models"])
        assert client(c)["last_seen"].startswith("2030-01-01T00:00:02")


def test_a_slow_receiver_of_telemetry_alerts_does_not_hold_commits_back(api):
    """A new agent seen in telemetry is alerted on from the pipeline's commit hook: awaited
    there, a receiver taking 4 s held every later commit back for as long."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.conftest import OISP_EXAMPLES

    delivered: list[bytes] = []

    async def slow(request: Request) -> Response:
        body = await request.body()
        await asyncio.sleep(4)
        delivered.append(body)
        return Response("ok")

    rport = free_port("127.0.0.63")
    request = json.loads((OISP_EXAMPLES / "ai-request-openai.json").read_text())
    later = {**request, "event_id": request["event_id"] + "-later"}
    with (
        serve([Spec("127.0.0.63", rport, Starlette(routes=[Route("/hook", slow, methods=["POST"])]))]),
        api.client() as c,
    ):
        put = c.put("/api/settings", json={"alert_enabled": True, "webhook_url": f"http://127.0.0.63:{rport}/hook"})
        assert put.status_code == 200
        assert c.post("/api/v1/ingest", json=[request]).json()["stored"] == 1  # a new agent: an alert to deliver
        time.sleep(0.5)  # the first commit's hook has started delivering
        started = time.monotonic()
        assert c.post("/api/v1/ingest", json=[later]).json()["stored"] == 1
        assert time.monotonic() - started < 2.5  # not behind the 4 s delivery
        _wait_for(lambda: len(delivered) == 1)  # and the alert was still delivered
