"""``agentwatch sessions`` against a real server."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from agentwatch.cli import app
from tests.sessions.aop import ev


def test_list_export_delete(shared_server, tmp_path):
    events = [ev("cli-s", 1, "session.started", {"goal": "from the cli"}), ev("cli-s", 2, "session.ended")]
    with shared_server.client() as c:
        assert c.post("/events", json=events).json()["stored"] == 2
    runner = CliRunner()
    url = ["--server", shared_server.url]
    r = runner.invoke(app, ["sessions", "list", "--status", "completed", *url])
    assert r.exit_code == 0, r.output
    assert "cli-s" in r.output and "completed" in r.output
    out = tmp_path / "s.jsonl"
    r = runner.invoke(app, ["sessions", "export", "cli-s", "-o", str(out), *url])
    assert r.exit_code == 0, r.output
    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == events
    r = runner.invoke(app, ["sessions", "delete", "cli-s", *url])
    assert r.exit_code == 0 and "deleted 1 sessions, 2 events" in r.output
    r = runner.invoke(app, ["sessions", "delete", "cli-s", *url])
    assert r.exit_code == 1 and "404" in r.output
