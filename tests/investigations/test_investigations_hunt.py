"""Defects found by attacking the investigator (SQLite and PostgreSQL): crafted cursors, tool
starts racing on one case, a changed entry the listing must still summarise, and a server
stopping with investigations queued."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from agentwatch.config import LlmSettings
from tests.investigations.support import (
    BOUNDS,
    LLM_KEY,
    MODEL,
    all_entries,
    final,
    new_case,
    run_standard,
    script,
    seed,
    start,
    wait_done,
)
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer, open_settings, run_server


def _cursor(sort_key: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort_key, row_id])).decode().rstrip("=")


def test_a_crafted_cursor_is_a_400_not_a_500(srv: RunningServer, c: Any) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    for key in ("00000000-0000-4000-8000-000000000000.\u00b2", "a." + "9" * 40):
        r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"cursor": _cursor(1.0, key)})
        assert r.status_code == 400, (key, r.status_code, r.text)
        assert r.json()["error"]["message"].startswith("cursor")


def test_starts_racing_on_one_case_run_one_and_answer_409_to_the_rest(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    script(fake, [final({"summary": "raced"})])
    fake.delay_s = 0.5
    gate = threading.Barrier(8)

    def go(_: int) -> int:
        with srv.client() as mine:
            gate.wait()
            return mine.post(f"/api/v1/cases/{case_id}/investigations:start").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(go, range(8)))
    fake.delay_s = 0.0
    assert codes == [202] + [409] * 7, codes
    found = c.get(f"/api/v1/cases/{case_id}/investigations").json()["investigations"]
    assert len(found) == 1 and wait_done(c, found[0]["id"])["status"] == "done"


def test_the_listing_summarises_a_changed_entry_without_failing(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    with srv.aw.engine.begin() as conn:
        q = "SELECT body FROM investigation_entries WHERE investigation_id = :i AND seq = 2"
        doc = orjson.loads(conn.execute(text(q), {"i": iid}).scalar_one())
        doc["payload"]["message"] = "changed"
        conn.execute(
            text("UPDATE investigation_entries SET body = :b WHERE investigation_id = :i AND seq = 2"),
            {"b": orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode(), "i": iid},
        )
    r = c.get(f"/api/v1/cases/{case_id}/investigations", params={"investigation_id": iid})
    assert r.status_code == 200, r.text
    assert c.get(f"/api/v1/investigations/{iid}.2").status_code == 200
    assert c.get(f"/api/v1/investigations/{iid}").json()["ledger"]["first_bad_seq"] == 2


def test_an_investigation_marked_abandoned_while_it_runs_stops_writing(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    """Another node (with a shorter max_wall_s, say) marked it abandoned: this node must not go on
    appending to its ledger nor mark it done, or two investigations of the case would run at once."""
    case_id = new_case(c, seed(srv.aw.engine))
    script(fake, [final({"summary": "late"})])
    fake.delay_s = 1.0
    iid = start(c, case_id)
    for _ in range(200):
        if fake.sent:
            break
        time.sleep(0.02)
    assert fake.sent
    with srv.aw.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE investigations SET status = 'failed', active_case = NULL,"
                " error = 'abandoned: its node stopped' WHERE id = :i"
            ),
            {"i": iid},
        )
    tasks = srv.aw.components["investigations"]._tasks
    for _ in range(300):
        if iid not in tasks:
            break
        time.sleep(0.02)
    fake.delay_s = 0.0
    assert iid not in tasks
    doc = c.get(f"/api/v1/investigations/{iid}").json()
    assert doc["status"] == "failed" and doc["error"] == "abandoned: its node stopped", doc
    assert [e["kind"] for e in all_entries(c, case_id, iid)] == ["prompt"]
    assert doc["ledger"]["verified"] is True


def _server_settings(tmp_path: Path, database_url: str, fake: FakeLlm, **bounds: Any) -> Any:
    base = open_settings(tmp_path, database_url)
    llm = LlmSettings(enabled=True, base_url=fake.url, model=MODEL, api_key=LLM_KEY, allow_private=True, timeout_s=30)
    return base.model_copy(
        update={
            "llm": llm,
            "investigations": base.investigations.model_copy(update={**BOUNDS, **bounds}),
            "sla": base.sla.model_copy(update={"enabled": False}),
        }
    )


@pytest.mark.xdist_group("investigations-own-server")
def test_the_wall_time_bound_stops_a_run_waiting_on_the_model(database_url: str, tmp_path: Path, fake: FakeLlm) -> None:
    fake.reset()
    fake.delay_s = 5.0
    with run_server(_server_settings(tmp_path, database_url, fake, max_wall_s=1)) as s, s.client() as c:
        case_id = new_case(c, seed(s.aw.engine))
        began = time.monotonic()
        doc = wait_done(c, start(c, case_id))
        assert time.monotonic() - began < 4
        assert doc["status"] == "failed" and doc["error"] == "investigations.max_wall_s: not done within 1 s"
        assert [e["kind"] for e in all_entries(c, case_id)] == ["prompt", "failure"]
        assert doc["ledger"]["verified"] is True
    fake.reset()


@pytest.mark.xdist_group("investigations-own-server")
def test_a_server_stopping_fails_its_queued_and_running_investigations(
    database_url: str, tmp_path: Path, fake: FakeLlm
) -> None:
    settings = _server_settings(tmp_path, database_url, fake, max_concurrent=1)
    fake.reset()
    fake.delay_s = 8.0  # the first investigation waits on the model; the second waits for a slot
    with run_server(settings) as s, s.client() as c:
        running = start(c, new_case(c, seed(s.aw.engine)))
        queued = start(c, new_case(c, seed(s.aw.engine)))
        for _ in range(200):
            if fake.sent:
                break
            time.sleep(0.02)
        assert fake.sent
        engine = s.aw.engine
    fake.reset()
    with engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                text("SELECT id, status, active_case, error FROM investigations WHERE id IN (:a, :b)"),
                {"a": running, "b": queued},
            )
        }
    engine.dispose()  # the stopped server's engine opened a pool again for this read: close it
    for iid in (running, queued):
        assert rows[iid].status == "failed" and rows[iid].active_case is None, rows[iid]
        assert rows[iid].error.startswith("stopped: the server stopped")
