"""Scale-out (NATS JetStream, a shared PostgreSQL): an API node learns nothing, so its UEBA
routes must read the store the workers write, not a copy of it taken when the node started."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from agentwatch.config import Settings
from tests.detect.helpers import wait_for
from tests.support.server import run_server
from tests.support.services import NATS_URL, drop_postgres_database, fresh_postgres_database, require_service
from tests.ueba.helpers import UEBA, at, host_id, ordinary_days, tool_event


def node(data_dir: Path, db_url: str, role: str, run: str) -> Settings:
    return Settings(
        data_dir=data_dir / f"{role}-{uuid.uuid4().hex[:6]}",
        database_url=db_url,
        nats_url=NATS_URL,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        pipeline={"role": role, "nats_stream": f"AWUEBA_{run}", "nats_subject": f"awueba_{run}"},
        ueba={**UEBA, "persist_interval_s": 1},
    )


def count_on(c: Any, host: str) -> int | None:
    r = c.get(f"/api/v1/ueba/baselines/{host_id(host)}")
    return r.json()["event_count"] if r.status_code == 200 else None


def test_an_api_node_started_later_shows_what_the_worker_learnt_since(tmp_path: Path) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    url, name = fresh_postgres_database()
    run = uuid.uuid4().hex[:10]
    host = "scaled-host"
    try:
        with (
            run_server(node(tmp_path, url, "worker", run)) as worker,
            run_server(node(tmp_path, url, "api", run)) as api,
        ):
            with api.client() as c:
                assert c.post("/api/v1/ingest", json=ordinary_days(host)).status_code == 200
                assert wait_for(lambda: count_on(c, host) == 54)  # the worker learnt and wrote them
            # a second API node starts while the store holds 54 events' baseline
            with run_server(node(tmp_path, url, "api", run)) as late, late.client() as c2:
                assert count_on(c2, host) == 54
                with api.client() as c:
                    assert c.post("/api/v1/ingest", json=[tool_event(host, at(3, 10))]).status_code == 200
                assert wait_for(lambda: count_on(c2, host) == 55), count_on(c2, host)
                assert late.aw.ueba_detector.counts()["in_memory"] == 0  # it learns nothing, holds nothing
            assert worker.aw.pipeline.committed_total == 55
    finally:
        drop_postgres_database(name)


def test_a_reset_on_an_api_node_is_not_undone_by_the_worker_holding_the_baseline(tmp_path: Path) -> None:
    require_service("NATS", "127.0.0.1", 4222)
    url, name = fresh_postgres_database()
    run = uuid.uuid4().hex[:10]
    host = "reset-scaled"
    try:
        with (
            run_server(node(tmp_path, url, "worker", run)) as worker,
            run_server(node(tmp_path, url, "api", run)) as api,
            api.client() as c,
        ):
            assert c.post("/api/v1/ingest", json=ordinary_days(host)).status_code == 200
            assert wait_for(lambda: count_on(c, host) == 54)
            assert c.delete(f"/api/v1/ueba/baselines/{host_id(host)}").status_code == 204
            assert count_on(c, host) is None
            # the worker still holds the 54 events' baseline: the next event must not bring it back
            assert c.post("/api/v1/ingest", json=[tool_event(host, at(3, 10))]).status_code == 200
            assert wait_for(lambda: worker.aw.ueba_detector.get(host_id(host)) is None)  # it forgot it
            assert count_on(c, host) is None
            assert c.post("/api/v1/ingest", json=[tool_event(host, at(3, 10, 5))]).status_code == 200
            assert wait_for(lambda: count_on(c, host) == 1)  # learning starts again, warm-up first
            assert c.get(f"/api/v1/ueba/baselines/{host_id(host)}").json()["status"] == "warming_up"
    finally:
        drop_postgres_database(name)
