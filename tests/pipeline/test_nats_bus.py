"""Scale-out: an API node hands events to NATS JetStream, a worker node commits them to PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pydantic import ValidationError
from websockets.sync.client import connect

from agentwatch.config import Settings
from tests.support.server import run_server
from tests.support.services import NATS_URL, drop_postgres_database, fresh_postgres_database, require_service


@pytest.fixture
def shared_pg():
    url, name = fresh_postgres_database()
    yield url
    drop_postgres_database(name)


def node(tmp_path, db_url: str, role: str, run: str) -> Settings:
    return Settings(
        data_dir=tmp_path / role,
        database_url=db_url,
        nats_url=NATS_URL,
        auth={"enabled": False},
        pipeline={"role": role, "nats_stream": f"AWTEST_{run}", "nats_subject": f"awtest_{run}"},
    )


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_api_node_publishes_worker_commits_and_live_clients_see_it(tmp_path, shared_pg):
    require_service("NATS", "127.0.0.1", 4222)
    run = uuid.uuid4().hex[:10]
    events = [
        {
            "event_id": f"{run}-{i}",
            "event_type": "process.exec",
            "process": {"pid": i, "name": "p"},
            "data": {"exe": "/p"},
        }
        for i in range(50)
    ]
    with (
        run_server(node(tmp_path, shared_pg, "worker", run)) as worker,
        run_server(node(tmp_path, shared_pg, "api", run)) as api,
        connect(api.ws_url + "/ws/events", max_queue=None) as ws,
    ):
        with api.client() as c:
            first = c.post("/api/v1/ingest", json=events).json()
            again = c.post("/api/v1/ingest", json=events[:5]).json()
        assert first["accepted"] == 50 and first["stored"] == 50
        assert again["duplicates"] == 5  # JetStream's duplicate window caught the re-send
        with worker.client() as w:
            assert wait_for(lambda: w.get("/api/events").json()["total"] == 50)
        # the API node reads the same store
        with api.client() as c:
            assert c.get(f"/api/events/{run}-7").json()["process"]["pid"] == 7
        frame = json.loads(ws.recv(timeout=10))
        assert frame["type"] == "event" and frame["data"]["event_id"].startswith(run)
        assert api.aw.pipeline.committed_total == 0  # the API node committed nothing itself
        assert worker.aw.pipeline.committed_total == 50


def test_role_without_nats_url_is_refused(tmp_path):
    with pytest.raises(ValidationError, match="nats_url: required when pipeline.role is 'api'"):
        Settings(data_dir=tmp_path, pipeline={"role": "api"})


def test_a_node_that_cannot_reach_nats_stops_naming_it_instead_of_hanging(tmp_path):
    """The client would retry its first connection for ever, inside start-up, deaf to SIGTERM."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.server import free_port

    closed = free_port()  # nothing listens there
    exe = Path(sys.executable).parent / "agentwatch"
    env = {**os.environ, "AGENTWATCH_DATA_DIR": str(tmp_path)}
    args = ["serve", "--role", "api", "--nats-url", f"nats://user:hunter2@127.0.0.1:{closed}", "--port", "0"]
    started = time.monotonic()
    r = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 60
    assert r.returncode != 0
    assert f"nats_url: no NATS server answered at nats://***@127.0.0.1:{closed}" in r.stderr
    assert "hunter2" not in r.stderr
    retries = [line for line in r.stderr.splitlines() if "bus.nats_error" in line]
    assert retries and not any("Traceback" in line for line in retries)  # one line each, no traceback
    assert "nats: encountered error" not in r.stderr


def test_filters_changed_through_the_api_node_apply_on_the_worker(tmp_path, shared_pg):
    require_service("NATS", "127.0.0.1", 4222)
    run = uuid.uuid4().hex[:10]
    with (
        run_server(node(tmp_path, shared_pg, "worker", run)) as worker,
        run_server(node(tmp_path, shared_pg, "api", run)) as api,
    ):
        worker.aw.filters.reload_s = 0.0  # read the stored filters on every batch (default: every 5 s)
        with api.client() as c:
            assert c.post("/api/filters/process", json={"name": "kept"}).json()["process_filter"] == ["kept"]
            events = [
                {"event_id": f"{run}-{name}", "event_type": "process.exec", "process": {"pid": pid, "name": name}}
                for pid, name in ((1, "kept"), (2, "dropped"))
            ]
            assert c.post("/api/v1/ingest", json=events).json()["accepted"] == 2
        with worker.client() as w:
            assert wait_for(lambda: w.get("/api/events").json()["total"] == 1)
            time.sleep(0.5)  # the other event had its chance to be committed
            assert [e["process"]["name"] for e in w.get("/api/events").json()["events"]] == ["kept"]
            assert w.get("/api/filters").json()["process_filter"] == ["kept"]


def _aop(session: str, seq: int) -> dict:
    from tests.sessions.aop import ev

    return ev(session, seq, "session.started" if seq == 1 else "cognition.thought", {"reasoning": f"step {seq}"})


def test_a_session_deleted_through_the_api_node_does_not_come_back_with_events_on_their_way(tmp_path, shared_pg):
    """Events the API node accepted are in the stream, not yet stored, when the delete arrives:
    the delete waits for a worker to commit them, then deletes them with the rest, so the
    session does not come back once they are stored."""
    import threading

    require_service("NATS", "127.0.0.1", 4222)
    run = uuid.uuid4().hex[:10]
    session = f"s-{run}"
    with run_server(node(tmp_path, shared_pg, "api", run)) as api:
        with run_server(node(tmp_path, shared_pg, "worker", run)) as worker, api.client() as c:
            assert c.post("/events", json=[_aop(session, i) for i in range(1, 11)]).status_code == 200
            with worker.client() as w:
                assert wait_for(lambda: w.get(f"/sessions/{session}").status_code == 200)
                assert wait_for(lambda: len(w.get(f"/sessions/{session}").json()["events"]) == 10)
        # no worker now: five more events are accepted (held by the stream) but not stored
        with api.client() as c:
            assert c.post("/events", json=[_aop(session, i) for i in range(11, 16)]).status_code == 200
        answer: dict = {}

        def delete() -> None:
            with api.client() as c:
                r = c.delete(f"/sessions/{session}")
                answer.update(status=r.status_code, body=r.json())

        deleting = threading.Thread(target=delete)
        deleting.start()
        time.sleep(0.5)
        assert deleting.is_alive()  # waiting for the events on their way
        with run_server(node(tmp_path, shared_pg, "worker", run)) as worker2:
            deleting.join(30)
            assert answer["status"] == 200, answer
            assert answer["body"]["deleted"]["events"] == 15, answer
            with worker2.client() as w:
                assert w.get(f"/sessions/{session}").status_code == 404
                assert w.get("/api/events", params={"limit": 1}).json()["total"] == 0


def test_a_delete_with_no_worker_to_commit_answers_503_after_the_settle_timeout(tmp_path, shared_pg):
    require_service("NATS", "127.0.0.1", 4222)
    run = uuid.uuid4().hex[:10]
    settings = node(tmp_path, shared_pg, "api", run)
    settings.pipeline.settle_timeout_s = 1.0
    with run_server(settings) as api, api.client() as c:
        assert c.post("/events", json=[_aop(f"s-{run}", 1)]).status_code == 200
        started = time.monotonic()
        r = c.delete(f"/sessions/s-{run}")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        message = r.json()["error"]["message"]
        assert "within 1 s (pipeline.settle_timeout_s; 1 still on their way)" in message
        assert time.monotonic() - started < 10
