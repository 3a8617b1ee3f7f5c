"""SIGTERM while clients are posting: every event the server acknowledged is in the store.

The server is the `agentwatch serve` command in its own process, on SQLite and on
PostgreSQL. Clients keep posting batches with unique event ids until the server stops
answering; the test then starts the server again on the same store and asks for each
acknowledged id. A request cut off by the shutdown may or may not have been stored (its
client never heard), but nothing the server answered 200 for may be missing, and no
request may be answered 5xx other than the documented 503 refusal while shutting down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx

from tests.cli.test_serve_and_replay import BIN, wait_up
from tests.support.server import free_port

CLIENTS = 4
PER_REQUEST = 50


def _serve(data_dir: Path, database_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AGENTWATCH_DATA_DIR": str(data_dir), "AGENTWATCH_LOG_LEVEL": "WARNING"}
    cmd = [str(BIN), "serve", "--no-auth", "--port", str(port), "--database-url", database_url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, timeout=60)
    return proc, url


def _post_until_refused(url: str, run: str, client: int, acked: list[str], answers: list[int]) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for n in range(100_000):
            ids = [f"{run}-{client}-{n}-{i}" for i in range(PER_REQUEST)]
            body = [{"event_id": e, "event_type": "process.exec", "data": {"exe": "/bin/true"}} for e in ids]
            try:
                r = http.post("/api/v1/ingest", json=body)
            except httpx.TransportError:
                return  # the server closed the connection: the shutdown has begun
            answers.append(r.status_code)
            if r.status_code != 200:
                return
            doc = r.json()
            assert doc["stored"] + doc["duplicates"] == PER_REQUEST, doc
            acked.extend(ids)


def test_every_acknowledged_event_survives_a_sigterm_under_load(tmp_path, database_url):
    proc, url = _serve(tmp_path, database_url)
    run = uuid.uuid4().hex[:8]
    acked: list[str] = []
    answers: list[int] = []
    try:
        threads = [
            threading.Thread(target=_post_until_refused, args=(url, run, c, acked, answers)) for c in range(CLIENTS)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 20 * PER_REQUEST:  # the load is flowing
            assert time.monotonic() < deadline, "the clients got no answers"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
    assert set(answers) <= {200, 503}, sorted(set(answers))
    assert len(acked) >= 20 * PER_REQUEST

    again, url = _serve(tmp_path, database_url)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            missing = [e for e in acked if http.get(f"/api/events/{e}").status_code != 200]
            total = http.get("/api/events", params={"limit": 1}).json()["total"]
    finally:
        again.terminate()
        again.communicate(timeout=60)
    assert missing == []
    assert total >= len(acked)
