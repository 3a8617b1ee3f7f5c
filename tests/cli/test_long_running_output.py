"""Commands that run until stopped: what a script reads on stdout, and the exit status after Ctrl-C.

``scan --every`` prints a round after a round on stdout: as one JSON document after another no
JSON reader could take the stream, so each round is one compact document on its own line.
``sensor`` stopped with Ctrl-C exits 130, like ``replay``, having said so in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.cli.test_cli_hunt import BIN, Collected, run
from tests.support.server import free_port


def _stop_with(
    proc: subprocess.Popen[bytes], stderr: Collected, sig: signal.Signals = signal.SIGINT
) -> tuple[str, str]:
    """Send ``sig`` (Ctrl-C by default) and wait for the end; (stdout, stderr) as text."""
    proc.send_signal(sig)
    try:
        out = proc.stdout.read()  # type: ignore[union-attr]
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    said = stderr.text()
    proc.stderr.close()  # type: ignore[union-attr]
    return out.decode(), said


def _start(args: list[str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Collected]:
    proc = subprocess.Popen(
        [str(BIN), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path), "AGENTWATCH_CONFIG": ""},
    )
    return proc, Collected(proc.stderr)


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float = 60) -> list[bytes]:
    lines: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        assert time.monotonic() < deadline, f"only {len(lines)} line(s) on stdout"
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"stdout closed after {lines!r}"
        lines.append(line)
    return lines


def test_scan_every_prints_each_round_as_one_json_line(tmp_path):
    closed = str(free_port())
    for fmt, check in (("json", lambda doc: doc["summary"]), ("sarif", lambda doc: doc["runs"][0]["tool"])):
        proc, stderr = _start(["scan", "127.0.0.1", "--ports", closed, "-f", fmt, "--every", "1"], tmp_path)
        try:
            rounds = _read_lines(proc, 2)
        finally:
            out, said = _stop_with(proc, stderr)
        stream = b"".join(rounds).decode() + out
        docs = [json.loads(line) for line in stream.splitlines() if line.strip()]
        assert len(docs) >= 2, said
        assert all(check(doc) for doc in docs)
        assert proc.returncode == 130 and "Traceback" not in said, said


def test_scan_every_prints_the_csv_header_once(tmp_path):
    closed = str(free_port())
    proc, stderr = _start(["scan", "127.0.0.1", "--ports", closed, "-f", "csv", "--every", "1"], tmp_path)
    try:
        first = _read_lines(proc, 1)[0]
        time.sleep(2.5)  # two more rounds
    finally:
        out, said = _stop_with(proc, stderr)
    assert first.startswith(b"id,host,"), said
    assert "id,host," not in out and "\n\n" not in out  # one table: no header again, no blank line


def test_a_single_scan_round_keeps_the_indented_document(tmp_path):
    ran = run(["scan", "127.0.0.1", "--ports", str(free_port()), "-f", "json"], tmp_path)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("{\n  ") and json.loads(ran.stdout)["summary"]


def test_sensor_stopped_by_ctrl_c_exits_130_in_one_line(tmp_path):
    server = f"http://127.0.0.1:{free_port()}"  # nobody there: the sensor keeps its events on disk
    proc, stderr = _start(
        ["sensor", "--server", server, "--watch", str(tmp_path), "--buffer-dir", str(tmp_path / "buf")], tmp_path
    )
    try:
        stderr.wait_for(b"agentwatch sensor: ready")
    finally:
        out, said = _stop_with(proc, stderr)
    assert proc.returncode == 130, said
    assert "sensor stopped: interrupted" in said and "Traceback" not in said
    assert set(json.loads(out)) >= {"sent", "rejected", "buffered_dropped"}  # the summary is still printed


def test_sensor_stopped_by_sigterm_still_exits_0(tmp_path):
    server = f"http://127.0.0.1:{free_port()}"
    proc, stderr = _start(["sensor", "--server", server, "--buffer-dir", str(tmp_path / "buf")], tmp_path)
    try:
        stderr.wait_for(b"agentwatch sensor: ready")
    finally:
        _out, said = _stop_with(proc, stderr, signal.SIGTERM)
    assert proc.returncode == 0, said
    assert "interrupted" not in said
