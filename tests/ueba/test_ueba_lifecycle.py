"""Baselines outlive a restart (written every ``persist_interval_s`` and at shutdown, read back
at start), and a server with UEBA disabled answers 503 and learns nothing; on both stores."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from agentwatch.config import Settings
from agentwatch.ueba.schema import ueba_baselines
from tests.detect.helpers import wait_for
from tests.support.server import open_settings, run_server
from tests.ueba.helpers import UEBA, anomalies, at, host_id, ingest, ordinary_days, tool_event

ROUTES = [
    "/api/v1/ueba/anomalies",
    f"/api/v1/ueba/anomalies/{host_id('x')}",
    "/api/v1/ueba/baselines",
    f"/api/v1/ueba/baselines/{host_id('x')}",
    "/api/v1/ueba/stats",
    f"/api/v1/entities/{host_id('x')}/baseline",
    "/api/v1/anomaly/timeline",
]


def stored_count(engine, entity: str) -> int | None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        row = conn.execute(select(ueba_baselines.c.event_count).where(ueba_baselines.c.entity_id == entity)).first()
    return None if row is None else int(row[0])


def test_a_restart_keeps_the_baseline_and_disabled_gives_503(database_url: str, tmp_path: Path) -> None:
    host = "restart-host"
    base = open_settings(tmp_path, database_url)
    live = base.model_copy(update={"ueba": Settings(ueba={**UEBA, "persist_interval_s": 1}).ueba})
    with run_server(live) as s, s.client() as c:
        ingest(c, ordinary_days(host))
        wait_for(lambda: stored_count(s.aw.engine, host_id(host)) == 54)  # the periodic write
        ingest(c, [tool_event(host, at(2, 17, 50))])
    with run_server(live) as s, s.client() as c:
        b = c.get(f"/api/v1/ueba/baselines/{host_id(host)}").json()
        assert (b["status"], b["event_count"]) == ("active", 55)
        assert b["hour_of_day"]["counts"][17] == 7
        ingest(c, [tool_event(host, at(3, 3))])  # scored at once: no second warm-up
        (a,) = wait_for(lambda: anomalies(c, host))
        assert [r["kind"] for r in a["reasons"]] == ["rare_hour"]
    off = base.model_copy(update={"ueba": Settings(ueba={"enabled": False}).ueba})
    with run_server(off) as s, s.client() as c:
        for path in ROUTES:
            r = c.get(path)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["error"]["message"] == "ueba: UEBA is disabled (ueba.enabled is false)"
        assert c.delete(f"/api/v1/ueba/baselines/{host_id(host)}").status_code == 503
        ingest(c, [tool_event("quiet-host", at(3, 3))])
        assert stored_count(s.aw.engine, host_id("quiet-host")) is None
        assert stored_count(s.aw.engine, host_id(host)) == 56  # kept, untouched
