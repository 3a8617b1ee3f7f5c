"""The host sensor as a real process against a real server: a child process, a connection, a watched file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentwatch.capture.gateway.identify import provider_index
from agentwatch.capture.sensor.agents import classify
from agentwatch.capture.sensor.files import sensitive
from agentwatch.capture.sensor.shipper import DiskBuffer, Shipper
from tests.capture.conftest import wait_events
from tests.support.server import free_port, serve_asgi

ROOT = Path(__file__).resolve().parents[2]


def start_sensor(url: str, watch: Path, buffer_dir: Path) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "agentwatch.cli",
        "sensor",
        "--server",
        url,
        "--watch",
        str(watch),
        "--poll-interval",
        "0.1",
        "--buffer-dir",
        str(buffer_dir),
        "--duration",
        "60",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    assert proc.stderr is not None
    for line in proc.stderr:
        if "agentwatch sensor: ready" in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"sensor did not start: {proc.stderr.read()}")


def all_events(c, event_type: str) -> list[dict]:
    """Every stored event of a type (the machine may be busy: page through all of them)."""
    out: list[dict] = []
    while True:
        page = c.get("/api/events", params={"type": event_type, "limit": 1000, "offset": len(out)}).json()["events"]
        out += page
        if len(page) < 1000:
            return out


def wait_for(c, event_type: str, match, timeout: float = 40.0) -> list[dict]:
    """The events of a type that ``match``, waiting while the sensor polls and ships (a busy machine is slow)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in all_events(c, event_type) if match(e)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_sensor_sees_child_process_connection_and_watched_file(server, tmp_path):
    watched = tmp_path / "secrets"
    watched.mkdir()
    sensor = start_sensor(server.url, watched, tmp_path / "buffer")
    marker = f"aw-marker-{uuid.uuid4().hex[:8]}"
    listener = socket.socket()
    listener.bind(("127.0.0.3", 0))
    listener.listen()
    port = listener.getsockname()[1]
    c = server.client()
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)", "mcp-server-demo", marker])
        conn = socket.create_connection(("127.0.0.3", port))
        accepted, _ = listener.accept()
        (watched / ".env").write_text("TOKEN=1\n")
        # keep the connection open until the sensor has reported it
        conns = wait_for(c, "network.connect", lambda e: e["data"]["dest"]["port"] == port)
        conn.close()
        accepted.close()
        child.wait()
        exits = wait_for(c, "process.exit", lambda e: e["process"]["pid"] == child.pid)
    finally:
        sensor.send_signal(signal.SIGTERM)
        out, err = sensor.communicate(timeout=30)
        listener.close()
    try:
        assert sensor.returncode == 0, err
        execs = [e for e in all_events(c, "process.exec") if marker in e["data"].get("args", [])]
        assert len(execs) == 1, (out, err[-3000:])
        ex = execs[0]
        assert ex["process"]["pid"] == child.pid and ex["process"]["ppid"] == os.getpid()
        assert ex["data"]["exe"] == os.path.realpath(sys.executable)
        assert ex["process"]["cwd"] == os.getcwd()
        assert ex["actor"]["uid"] == os.getuid()
        assert ex["attrs"]["agent.detection"] == "mcp_server_stdio"  # an MCP server spawned over stdio
        assert len(exits) == 1
        assert len(conns) == 1
        assert conns[0]["data"]["dest"]["ip"] == "127.0.0.3" and conns[0]["process"]["pid"] == os.getpid()
        writes = [e for e in all_events(c, "file.write") if e["data"]["path"] == str(watched / ".env")]
        assert writes and writes[0]["attrs"]["file.sensitive"] is True
        # the same events feed the process list
        procs = c.get("/api/processes", params={"limit": 10_000}).json()["processes"]
        assert any(p["pid"] == child.pid and p["ppid"] == os.getpid() for p in procs)
    finally:
        c.close()


def test_shipper_buffers_on_disk_while_the_server_is_away(server, tmp_path):
    event = {
        "event_type": "process.exec",
        "ts": "2026-01-01T00:00:00Z",
        "process": {"pid": 999_999, "name": "buffered"},
        "data": {"exe": "/bin/buffered"},
        "source": {"collector": "agentwatch-sensor"},
        "confidence": {"level": "medium", "completeness": "partial"},
    }
    buffer = DiskBuffer(tmp_path / "buf", max_bytes=1_000_000)
    away = Shipper(f"http://127.0.0.1:{free_port()}", None, buffer, timeout=2)
    away.ship([event])
    assert len(buffer.segments()) == 1 and away.sent == 0
    away.close()
    back = Shipper(server.url, None, buffer)
    try:
        back.ship([])  # nothing new: the buffer is flushed anyway
    finally:
        back.close()
    assert buffer.segments() == [] and (back.sent, back.rejected) == (1, 0)
    with server.client() as c:
        assert [e["process"]["name"] for e in wait_events(c, "process.exec", 1)] == ["buffered"]


def test_shipper_keeps_a_batch_another_service_answered_200(server, tmp_path):
    """A 200 that is not agentwatch's ingest answer (a proxy's page, a wrong --server) is no
    proof of delivery: the batch stays buffered and goes to the real server later."""

    async def not_agentwatch(request):
        return PlainTextResponse("<html>welcome</html>")

    event = {
        "event_type": "process.exec",
        "ts": "2026-01-01T00:00:00Z",
        "process": {"pid": 999_998, "name": "misdirected"},
        "data": {"exe": "/bin/misdirected"},
    }
    buffer = DiskBuffer(tmp_path / "buf", max_bytes=1_000_000)
    port = free_port()
    app = Starlette(routes=[Route("/api/v1/ingest", not_agentwatch, methods=["POST"])])
    with serve_asgi(app, "127.0.0.31", port):
        wrong = Shipper(f"http://127.0.0.31:{port}", None, buffer, timeout=5)
        try:
            wrong.ship([event])
        finally:
            wrong.close()
    assert len(buffer.segments()) == 1 and wrong.sent == 0
    right = Shipper(server.url, None, buffer)
    try:
        right.ship([])
    finally:
        right.close()
    assert buffer.segments() == [] and right.sent == 1
    with server.client() as c:
        assert [e["process"]["name"] for e in wait_events(c, "process.exec", 1)] == ["misdirected"]


def test_disk_buffer_drops_oldest_past_its_cap(tmp_path):
    buffer = DiskBuffer(tmp_path / "buf", max_bytes=300)
    for i in range(10):
        buffer.put([{"i": i, "pad": "x" * 80}])
    assert buffer.size() <= 300 + 120
    assert buffer.dropped >= 7


def test_agent_identification():
    assert classify("node", "node /usr/lib/node_modules/@anthropic-ai/claude-code/cli.js").name == "claude-code"
    assert classify("python3", "python3 -m aider --model gpt-4o").name == "aider"
    mcp = classify("npx", "npx -y @modelcontextprotocol/server-filesystem /tmp")
    assert mcp is not None and mcp.reason == "mcp_server_stdio"
    assert classify("bash", "bash -c ls") is None
    index = provider_index(None)
    assert index.by_host("api.anthropic.com") == "anthropic" and index.by_host("127.0.0.1", 11434) == "ollama"


def test_sensitive_files_by_name_suffix_and_folder():
    for name in ("/app/.env", "/app/.env.local", "/app/prod.env", "/home/u/.ssh/known_hosts", "/home/u/.aws/config"):
        assert sensitive(Path(name)), name
    for name in ("/app/main.py", "/app/environment.md", "/app/env", "/home/u/ssh/notes"):
        assert not sensitive(Path(name)), name
