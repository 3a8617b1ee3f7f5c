"""The ``agentwatch`` commands given bad arguments, bad files and servers that misbehave.

The bar: a one-line message naming the option or setting and the rule, exit 2 (usage) or 1
(runtime), never a traceback; no secret in the output; what scripts read on stdout; Ctrl-C
exits 130 having said how far it got. Real servers on loopback; the statuses a real server
does not give on demand (401 mid-way, 413, 429, 503) come from a small ASGI fake on 127.0.0.x.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from agentwatch.capture import cost
from agentwatch.cli import app
from tests.sessions.aop import ev
from tests.support.server import RunningServer, free_port, open_settings, run_server, serve_asgi

BIN = Path(sys.executable).parent / "agentwatch"
EVENT = {"event_type": "process.exec", "data": {"exe": "/bin/sh"}}


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def said(self) -> str:
        return self.stdout + self.stderr


def run(args: list[str], tmp_path: Path, *, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Ran:
    """One command in-process; an exception other than the command's exit fails the test."""
    base = {"AGENTWATCH_DATA_DIR": str(tmp_path), "AGENTWATCH_CONFIG": "", "AGENTWATCH_API_KEY": ""}
    with logs_kept():
        result = CliRunner().invoke(app, args, env={**base, **(env or {})}, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: uncaught {type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.stderr, result.stderr
    return Ran(result.exit_code, result.stdout, result.stderr)


@contextmanager
def logs_kept() -> Iterator[None]:
    """Commands point the logs at the runner's stderr, which is closed once they return: put back
    what the test process had, so the module's server does not log into a closed stream."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


def summary(ran: Ran) -> dict[str, object]:
    return json.loads(ran.stdout.strip().splitlines()[-1])


def jsonl(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real server (SQLite, authentication off); these tests are about the commands, not the store."""
    data = tmp_path_factory.mktemp("hunt-server")
    with run_server(open_settings(data, f"sqlite:///{data / 'aw.db'}")) as server:
        yield server


def stored(server: RunningServer, marker: str) -> int:
    with server.client() as c:
        events = c.get("/api/events", params={"limit": 1000}).json()["events"]
    return sum(1 for e in events if e.get("data", {}).get("marker") == marker)


def marked(marker: str, n: int) -> list[str]:
    return [
        json.dumps({"event_type": "process.exec", "data": {"exe": "/bin/sh", "marker": marker, "i": i}})
        for i in range(n)
    ]


# --- a fake ingest endpoint ------------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeIngest:
    """Answers each request with ``decide(body, n)`` (n counts requests from 1), or accepts every
    line when that gives None; ``hold_at`` keeps request ``hold_at`` waiting until ``release``."""

    decide: Callable[[bytes, int], Answer | None] = lambda body, n: None
    hold_at: int | None = None
    bodies: list[bytes] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        n = len(self.bodies)
        if n == self.hold_at:
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 60)
        status, headers, payload = self.decide(body, n) or accept_all(body)
        raw_headers = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})


def accept_all(body: bytes) -> Answer:
    n = len(body.splitlines())
    return 200, {}, json.dumps({"accepted": n, "stored": n, "rejected": 0, "errors": []}).encode()


def refusal(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return status, headers or {}, json.dumps({"error": {"code": "X", "message": message}}).encode()


@pytest.fixture
def fake() -> Iterator[tuple[FakeIngest, str]]:
    ingest = FakeIngest()
    host = "127.0.0.7"
    port = free_port(host)
    with serve_asgi(ingest, host, port):
        yield ingest, f"http://{host}:{port}"
    ingest.release.set()


# --- replay ------------------------------------------------------------------------------------------


def test_replay_says_in_one_line_that_the_server_is_unreachable(tmp_path):
    src = jsonl(tmp_path, "e.jsonl", [json.dumps(EVENT)])
    down = run(["replay", str(src), "--server", f"http://127.0.0.1:{free_port()}"], tmp_path)
    assert down.code == 1
    assert "cannot reach the server" in down.stderr and "no line was answered" in down.stderr
    assert summary(down) == {"accepted": 0, "rejected": 0, "through_line": 0}
    not_url = run(["replay", str(src), "--server", "127.0.0.1:7777"], tmp_path)
    assert not_url.code == 2 and "--server" in not_url.stderr and "http://" in not_url.stderr


def test_replay_rejects_a_line_that_is_not_one_object_whatever_the_batch(tmp_path, srv):
    # an array on a line read as several events (an error index past the request: IndexError);
    # a batch opening with one, as one malformed array (the whole replay stopped with a 400)
    lines = [
        '[{"event_type": "bogus"}, {"event_type": "bogus"}]',
        *marked("not-object", 1),
        "{",
        '  "event_type": "process.exec"',
        "}",
        "42",
    ]
    src = jsonl(tmp_path, "mixed.jsonl", lines)
    for batch in ("1", "1000"):
        ran = run(["replay", str(src), "--server", srv.url, "--batch", batch], tmp_path)
        assert ran.code == 1, ran.stderr
        assert summary(ran) == {"accepted": 1, "rejected": 5}
        assert "line 1: event: must be one JSON object" in ran.stderr
        assert "line 3: event: malformed JSON" in ran.stderr
        assert "line 6: event: must be one JSON object" in ran.stderr
    assert stored(srv, "not-object") == 2


def test_replay_reads_a_gzip_file_across_many_requests(tmp_path, srv):
    # the compressed bytes were split at 0x0a and sent a "line" at a time: garbage after one request
    src = tmp_path / "events.jsonl.gz"
    src.write_bytes(gzip.compress("\n".join(["# exported", *marked("gz", 300)]).encode()))
    ran = run(["replay", str(src), "--server", srv.url, "--batch", "50"], tmp_path)
    assert ran.code == 0, ran.stderr
    assert summary(ran) == {"accepted": 300, "rejected": 0}
    assert stored(srv, "gz") == 300
    broken = tmp_path / "cut.gz"
    broken.write_bytes(src.read_bytes()[:40])
    cut = run(["replay", str(broken), "--server", srv.url], tmp_path)
    assert cut.code == 2 and "FILE" in cut.stderr and "not valid gzip" in cut.stderr


def test_replay_reads_standard_input_given_a_dash(tmp_path, srv):
    data = "\n".join(marked("stdin", 3)).encode()
    ran = run(["replay", "-", "--server", srv.url], tmp_path, stdin=data)
    assert ran.code == 0, ran.stderr
    assert summary(ran) == {"accepted": 3, "rejected": 0}
    assert stored(srv, "stdin") == 3


def test_replay_sends_a_request_again_after_429_and_503(tmp_path, fake):
    ingest, url = fake
    busy = {1: refusal(429, "rate limited", {"Retry-After": "0"}), 2: refusal(503, "queue full", {"Retry-After": "0"})}
    ingest.decide = lambda body, n: busy.get(n)
    src = jsonl(tmp_path, "e.jsonl", [json.dumps(EVENT)] * 4)
    ran = run(["replay", str(src), "--server", url], tmp_path)
    assert ran.code == 0, ran.stderr
    assert summary(ran) == {"accepted": 4, "rejected": 0}
    assert "server answered 429 (rate limited); sending again" in ran.stderr
    assert len(ingest.bodies) == 3 and len(set(ingest.bodies)) == 1


def test_replay_halves_a_request_the_server_finds_too_large(tmp_path, fake):
    ingest, url = fake

    def too_large(body: bytes, _n: int) -> Answer | None:
        if b"huge" in body or len(body.splitlines()) > 2:
            return refusal(413, "body: larger than 100 bytes")
        return None

    ingest.decide = too_large
    lines = [json.dumps(EVENT)] * 2 + [json.dumps({**EVENT, "data": {"exe": "huge"}})] + [json.dumps(EVENT)] * 2
    ran = run(["replay", str(jsonl(tmp_path, "e.jsonl", lines)), "--server", url, "--batch", "5"], tmp_path)
    assert ran.code == 1  # one line rejected
    assert summary(ran) == {"accepted": 4, "rejected": 1}
    assert "line 3: event: body: larger than 100 bytes" in ran.stderr


def test_replay_stopped_by_the_server_says_how_far_it_got(tmp_path, fake):
    ingest, url = fake
    answers = {3: refusal(401, "credentials: the API key was revoked")}
    ingest.decide = lambda body, n: answers.get(n)
    src = jsonl(tmp_path, "e.jsonl", [json.dumps(EVENT)] * 10)
    ran = run(["replay", str(src), "--server", url, "--batch", "2", "--api-key", "aw_0123456789ab_secret"], tmp_path)
    assert ran.code == 1
    assert summary(ran) == {"accepted": 4, "rejected": 0, "through_line": 4}
    assert "server answered 401: credentials: the API key was revoked" in ran.stderr
    assert "lines 1-4 were answered, the rest was not sent" in ran.stderr
    assert "aw_0123456789ab_secret" not in ran.said
    assert len(ingest.bodies) == 3

    ingest.bodies.clear()
    answers.clear()
    answers[1] = (200, {"content-type": "text/html"}, b"<html>a proxy's login page</html>")
    page = run(["replay", str(src), "--server", url], tmp_path)
    assert page.code == 1 and "server answered 200 without an ingest result" in page.stderr


def test_replay_ctrl_c_stops_after_the_request_in_flight_and_says_how_far(tmp_path, fake):
    ingest, url = fake
    ingest.hold_at = 3
    src = jsonl(tmp_path, "e.jsonl", [json.dumps(EVENT)] * 10)
    proc = subprocess.Popen(
        [str(BIN), "replay", str(src), "--server", url, "--batch", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path)},
    )
    stderr = Collected(proc.stderr)
    try:
        assert ingest.arrived.wait(60), "the third request never came"
        proc.send_signal(signal.SIGINT)
        stderr.wait_for(b"interrupted: stopping once the request in flight is answered")
        ingest.release.set()
        out = proc.stdout.read()  # stderr is the collector's to read
        proc.wait(timeout=60)
    finally:
        ingest.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    said = stderr.text()
    proc.stderr.close()
    assert proc.returncode == 130, said
    # the request in flight when Ctrl-C came was answered and counted; nothing was sent after it
    assert json.loads(out) == {"accepted": 6, "rejected": 0, "through_line": 6}
    assert len(ingest.bodies) == 3
    assert "replay stopped: interrupted; lines 1-6 were answered, the rest was not sent" in said
    assert "Traceback" not in said


class Collected:
    """A pipe read on a thread as it is written."""

    def __init__(self, pipe) -> None:  # type: ignore[no-untyped-def]
        self.data = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:  # type: ignore[no-untyped-def]
        for chunk in iter(lambda: pipe.read1(4096), b""):
            with self.lock:
                self.data += chunk

    def wait_for(self, text: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.data:
            assert time.monotonic() < deadline, f"never said {text!r}: {self.data[-2000:]!r}"
            time.sleep(0.02)

    def text(self) -> str:
        self.thread.join(timeout=10)
        return self.data.decode(errors="replace")


# --- settings ----------------------------------------------------------------------------------------


def test_a_settings_file_that_is_not_toml_is_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is { not toml\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    cases = (
        (["config", "--config", str(bad)], {}, f"--config {bad}: not a TOML file"),
        (["config"], {"AGENTWATCH_CONFIG": str(bad)}, f"AGENTWATCH_CONFIG {bad}: not a TOML file"),
        (["users", "list", "--config", str(binary)], {}, f"--config {binary}: not a TOML file"),
    )
    for args, env, message in cases:
        ran = run(args, tmp_path, env=env)
        assert ran.code == 2 and message in ran.stderr, (args, ran.stderr)


def test_a_settings_file_that_is_missing_or_a_directory_is_refused(tmp_path):
    # AGENTWATCH_CONFIG naming no file used to leave every setting at its default, silently
    missing = run(["config"], tmp_path, env={"AGENTWATCH_CONFIG": str(tmp_path / "nope.toml")})
    assert missing.code == 2 and "AGENTWATCH_CONFIG" in missing.stderr and "no such file" in missing.stderr
    assert missing.stdout == ""
    directory = run(["config", "--config", str(tmp_path)], tmp_path)
    assert directory.code == 2 and f"--config {tmp_path}: not a file" in directory.stderr


def test_a_bad_environment_variable_is_named(tmp_path):
    cases = (
        ({"AGENTWATCH_PORT": "http"}, "invalid setting port:", "AGENTWATCH_PORT"),
        (
            {"AGENTWATCH_PIPELINE__BATCH_SIZE": "0"},
            "invalid setting pipeline.batch_size:",
            "AGENTWATCH_PIPELINE__BATCH_SIZE",
        ),
        ({"AGENTWATCH_PIPELINE": "{not json"}, "invalid setting pipeline: not valid JSON", "AGENTWATCH_PIPELINE"),
    )
    for env, message, variable in cases:
        ran = run(["config"], tmp_path, env=env)
        assert ran.code == 2, (env, ran.stderr)
        assert message in ran.stderr and f"environment variable {variable})" in ran.stderr, ran.stderr
    # an option of the command outranks the variable: not blamed on it
    bad = run(["serve", "--port", "70000"], tmp_path, env={"AGENTWATCH_PORT": "7000"})
    assert bad.code == 2 and "invalid setting port:" in bad.stderr and "AGENTWATCH_PORT" not in bad.stderr


def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(tmp_path):
    url = f"postgresql://postgres:hunter2-pw@127.0.0.1:{free_port()}/aw"
    for args in (["users", "list"], ["keys", "list"], ["audit", "verify"]):
        ran = run(args, tmp_path, env={"AGENTWATCH_DATABASE_URL": url})
        assert ran.code == 1, (args, ran.stderr)
        assert "cannot connect" in ran.stderr and "postgres:***@127.0.0.1" in ran.stderr
        assert "hunter2-pw" not in ran.said
    served = subprocess.run(
        [str(BIN), "serve", "--port", str(free_port()), "--database-url", url],
        env={**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 1 and "cannot connect" in served.stderr
    assert "hunter2-pw" not in served.stdout + served.stderr and "Traceback" not in served.stderr
    unsupported = run(["users", "list"], tmp_path, env={"AGENTWATCH_DATABASE_URL": "mysql://u:hunter2-pw@127.0.0.1/x"})
    assert unsupported.code == 2 and "invalid setting database_url:" in unsupported.stderr
    assert "hunter2-pw" not in unsupported.said


def test_serve_exits_1_when_its_port_is_taken_and_2_for_a_data_dir_it_cannot_make(tmp_path):
    env = {
        **os.environ,
        "AGENTWATCH_DATA_DIR": str(tmp_path),
        "AGENTWATCH_DETECTION__ATR_BUNDLED": "false",
        "AGENTWATCH_DETECTION__PACK": "false",
    }
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = subprocess.run(
            [str(BIN), "serve", "--port", str(port), "--no-auth"], env=env, capture_output=True, text=True, timeout=120
        )
    assert served.returncode == 1, served.stderr[-2000:]  # uvicorn's own status was 3
    assert "address already in use" in served.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    no_dir = run(["serve", "--data-dir", str(blocker / "data")], tmp_path)
    assert no_dir.code == 2 and "invalid setting data_dir: cannot create" in no_dir.stderr


# --- users and keys ----------------------------------------------------------------------------------


def test_key_and_user_lists_show_whole_ids_and_json_without_secrets(tmp_path):
    assert run(["users", "create", "ops-lead@example.com", "--role", "admin"], tmp_path).code == 0
    made = run(["keys", "create", "--name", "agents", "--scopes", "events:write"], tmp_path)
    assert made.code == 0, made.stderr
    plaintext = made.stdout.strip()
    key_id = made.stderr.split("key ", 1)[1].split()[0]

    table = run(["keys", "list"], tmp_path)  # a pipe: 80 columns, where the id was cut to "523c26…"
    assert table.code == 0 and key_id in table.stdout
    users = run(["users", "list"], tmp_path)
    assert "ops-lead@example.com" in users.stdout

    listed = run(["keys", "list", "--json"], tmp_path)
    assert listed.code == 0
    [key] = json.loads(listed.stdout)
    assert key["id"] == key_id and plaintext.startswith(key["prefix"] + "_")
    secret = plaintext.removeprefix(key["prefix"] + "_")  # the secret itself may hold "_"
    assert len(secret) >= 40
    assert secret not in listed.said and secret not in table.said
    assert [u["email"] for u in json.loads(run(["users", "list", "--json"], tmp_path).stdout)] == [
        "ops-lead@example.com"
    ]
    assert run(["keys", "revoke", key_id], tmp_path).code == 0


def test_square_brackets_in_names_are_shown_as_typed_not_read_as_markup(tmp_path, srv):
    # rich read "[/b]" as a closing tag: MarkupError, and a key with such a name broke `keys list` for good
    assert run(["users", "create", "root@example.com", "--role", "admin"], tmp_path).code == 0
    nobody = run(["keys", "create", "--name", "x", "--scopes", "events:write", "--user", "[/x]"], tmp_path)
    assert nobody.code == 2 and "--user: no user '[/x]'" in nobody.stderr
    named = run(["keys", "create", "--name", "[/b][bold]ci", "--scopes", "events:write"], tmp_path)
    assert named.code == 0, named.stderr
    listed = run(["keys", "list"], tmp_path)
    assert listed.code == 0 and "[/" in listed.stdout  # the name column is narrow: "[/…"

    with srv.client() as c:  # an agent names its own session and goal
        assert c.post("/events", json=[ev("[/s]", 1, "session.started", {"goal": "[bold]g"})]).json()["stored"] == 1
    sessions = run(["sessions", "list", "--server", srv.url], tmp_path)
    assert sessions.code == 0 and "[/s]" in sessions.stdout and "[bold]g" in sessions.stdout


# --- scan --------------------------------------------------------------------------------------------


def test_scan_refuses_an_output_path_it_cannot_write_before_scanning(tmp_path):
    closed = str(free_port())
    missing = run(
        ["scan", "127.0.0.1", "--ports", closed, "-f", "json", "-o", str(tmp_path / "no" / "x.json")], tmp_path
    )
    assert missing.code == 2 and "--output" in missing.stderr and "does not exist" in missing.stderr
    directory = run(["scan", "127.0.0.1", "--ports", closed, "-f", "json", "-o", str(tmp_path)], tmp_path)
    assert directory.code == 2 and "is a directory" in directory.stderr


def test_scan_json_on_stdout_without_a_log_line_per_probe(tmp_path, srv):
    port = srv.url.rsplit(":", 1)[1]
    ran = run(["scan", "127.0.0.1", "--ports", port, "-f", "json"], tmp_path)
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout)["summary"]["detectors_run"]
    assert "HTTP Request:" not in ran.stderr  # httpx logged every probe at INFO, burying the progress bar


# --- sensor and prices -------------------------------------------------------------------------------


def test_sensor_options_out_of_range_are_usage_errors(tmp_path):
    server = ["--server", f"http://127.0.0.1:{free_port()}"]
    poll = run(["sensor", *server, "--poll-interval", "-1", "--duration", "1"], tmp_path)
    assert poll.code == 2 and "--poll-interval" in poll.stderr and "greater than or equal to 0.05" in poll.stderr
    duration = run(["sensor", *server, "--duration", "-1"], tmp_path)
    assert duration.code == 2 and "--duration" in duration.stderr and "more than 0" in duration.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    buffer = run(["sensor", *server, "--buffer-dir", str(blocker / "buf"), "--duration", "1"], tmp_path)
    assert buffer.code == 2 and "--buffer-dir: cannot create" in buffer.stderr


def test_prices_refresh_refuses_a_directory_and_reads_standard_input(tmp_path):
    directory = run(["prices", "refresh", "--from", str(tmp_path)], tmp_path)
    assert directory.code == 2 and "--from" in directory.stderr and "is a directory" in directory.stderr
    bundle = json.dumps(cost.packaged_bundle()).encode()
    piped = run(["prices", "refresh", "--from", "-"], tmp_path, stdin=bundle)
    assert piped.code == 0, piped.stderr
    assert json.loads(piped.stdout)["source"] == "stdin"
    assert (tmp_path / cost.BUNDLE_NAME).read_bytes() == bundle


# --- sessions ----------------------------------------------------------------------------------------


def test_sessions_diagnostics_go_to_stderr_and_failures_are_one_line(tmp_path, srv):
    url = ["--server", srv.url]
    # `sessions export ID > file` wrote the server's 404 message into the file
    missing = run(["sessions", "export", "no-such-session", *url], tmp_path)
    assert missing.code == 1 and missing.stdout == "" and "404: session 'no-such-session' not found" in missing.stderr
    down = run(["sessions", "list", "--server", f"http://127.0.0.1:{free_port()}"], tmp_path)
    assert down.code == 1 and "cannot reach the server" in down.stderr
    not_url = run(["sessions", "list", "--server", "localhost:7777"], tmp_path)
    assert not_url.code == 2 and "--server" in not_url.stderr
    status = run(["sessions", "list", "--status", "done", *url], tmp_path)
    assert status.code == 2 and "--status" in status.stderr and "running, completed" in status.stderr

    with srv.client() as c:
        assert c.post("/events", json=[ev("hunt-s", 1, "session.started")]).json()["stored"] == 1
    nowhere = run(["sessions", "export", "hunt-s", "-o", str(tmp_path / "no" / "s.jsonl"), *url], tmp_path)
    assert nowhere.code == 2 and "--output" in nowhere.stderr and "does not exist" in nowhere.stderr
    listed = run(["sessions", "list", "--json", *url], tmp_path)
    assert listed.code == 0 and "hunt-s" in [s["id"] for s in json.loads(listed.stdout)["sessions"]]


def test_sessions_name_an_answer_that_is_not_agentwatch_s(tmp_path, fake):
    _ingest, url = fake  # some other JSON service on that port: a KeyError traceback before
    for args in (["sessions", "list"], ["sessions", "delete", "s1"]):
        ran = run([*args, "--server", url], tmp_path)
        assert ran.code == 1 and "is not an agentwatch answer (200, application/json)" in ran.stderr, ran.stderr
