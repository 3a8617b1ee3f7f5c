"""The `agentwatch` command as a user runs it: serve in a subprocess, replay a JSONL file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from agentwatch.cli import app
from tests.conftest import OISP_EXAMPLES
from tests.support.server import free_port, run_server

BIN = Path(sys.executable).parent / "agentwatch"


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.communicate()[1].decode()[-2000:]}")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


def test_serve_starts_on_sqlite_in_the_data_dir_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--no-auth"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, proc)
        r = httpx.post(url + "/api/v1/ingest", json={"event_type": "process.exec", "data": {"exe": "/bin/sh"}})
        assert r.json()["stored"] == 1
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    # uvicorn re-raises SIGTERM after its graceful shutdown; the pipeline drained first
    assert proc.returncode in (0, -15)
    stopped = [json.loads(line) for line in err.decode().splitlines() if "server.stopped" in line]
    assert stopped and stopped[0]["committed"] == 1 and stopped[0]["pending"] == 0
    assert (tmp_path / "agentwatch.db").exists()


def test_an_invalid_setting_is_named_not_a_traceback(tmp_path):
    env = {**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path)}
    cases = (
        (["serve", "--role", "worker"], {}, "nats_url: required when pipeline.role is 'worker'"),
        (["config"], {"AGENTWATCH_PORT": "http"}, "invalid setting port:"),
        (["config"], {"AGENTWATCH_PIPELINE__BATCH_SIZE": "0"}, "invalid setting pipeline.batch_size:"),
        (["scan", "127.0.0.99"], {"AGENTWATCH_PORT": "http"}, "invalid setting port:"),
        (["sensor", "--duration", "1"], {"AGENTWATCH_PORT": "http"}, "invalid setting port:"),
        (["users", "list"], {"AGENTWATCH_PORT": "http"}, "invalid setting port:"),
        (
            ["config"],
            {"AGENTWATCH_SLA__NOTIFY_OUTPUTS": '["pagr"]'},
            "sla.notify_outputs: 'pagr' names no output of detection.outputs (known: none)",
        ),
    )
    for args, extra, message in cases:
        r = subprocess.run([str(BIN), *args], env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        assert message in " ".join(r.stderr.split()) and "Traceback" not in r.stderr, r.stderr


def test_no_auth_refuses_a_non_loopback_bind(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--no-auth", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "non-loopback" in result.output


def test_replay_feeds_a_jsonl_file_skipping_comments(tmp_path, settings):
    lines = ["# captured on the laptop", ""]
    for path in sorted(OISP_EXAMPLES.glob("*.json")):
        lines.append(json.dumps(json.loads(path.read_text())))
    lines.append('{"event_type": "nope"}')
    src = tmp_path / "events.jsonl"
    src.write_text("\n".join(lines) + "\n")
    with run_server(settings) as srv:
        result = CliRunner().invoke(app, ["replay", str(src), "--server", srv.url])
        assert result.exit_code == 1  # one line was rejected
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"accepted": 9, "rejected": 1}
        # a comment and a blank line, then the nine examples on lines 3-11: the bad event is line 12
        assert "line 12: event_type: unknown event type 'nope'" in result.output
        with srv.client() as c:
            assert c.get("/api/events").json()["total"] == 9


def test_replay_names_the_file_line_of_each_rejection_across_requests(tmp_path, settings):
    good = '{"event_type": "process.exec", "data": {"exe": "/bin/sh"}}'
    lines = ["# two per request", good, "", good, "// skipped", '{"event_type": "bogus"}', good, '{"event_type": 7}']
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n")
    with run_server(settings) as srv:
        result = CliRunner().invoke(app, ["replay", str(src), "--server", srv.url, "--batch", "2"])
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"accepted": 3, "rejected": 2}
    assert "line 6: event_type: unknown event type 'bogus'" in result.output
    assert "line 8: event_type:" in result.output


def test_replay_paced_by_event_time(tmp_path, settings):
    events = [
        {"event_type": "process.exec", "ts": f"2026-01-01T00:00:0{i}Z", "data": {"exe": "/bin/sh"}} for i in range(3)
    ]
    src = tmp_path / "paced.jsonl"
    src.write_text("\n".join(json.dumps(e) for e in events))
    with run_server(settings) as srv:
        started = time.monotonic()
        result = CliRunner().invoke(app, ["replay", str(src), "--server", srv.url, "--speed", "4"])
        elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert elapsed >= 0.45  # 2 s of event time at 4x speed


def test_replay_bad_speed_is_refused(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text("")
    result = CliRunner().invoke(app, ["replay", str(src), "--speed", "-1"])
    assert result.exit_code == 2 and "--speed" in result.output
