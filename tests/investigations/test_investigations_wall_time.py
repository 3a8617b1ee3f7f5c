"""The wall-time bound never cuts a ledger write short: when ``investigations.max_wall_s`` runs out
while an entry is being written (here: the store holds the write back, as a busy database
would), the entry is stored, then the run's ``failure`` entry after it, and the chain verifies.
Real server on SQLite and PostgreSQL, a fake LLM on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.investigations.support import all_entries, calls, new_case, script, seed, start, wait_done
from tests.investigations.test_investigations_hunt import _server_settings
from tests.support.fake_llm import FakeLlm
from tests.support.server import run_server

WALL_S = 1  # investigations.max_wall_s
ANSWER_DELAY_S = 0.4  # the model answers well within the limit...
HOLD_UNTIL_S = 2.5  # ...but its answer cannot be stored until well past it


def _wait_for(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


@pytest.mark.xdist_group("investigations-own-server")
def test_the_wall_time_cut_lets_a_ledger_write_finish_and_records_the_failure_after_it(
    database_url: str, tmp_path: Path, fake: FakeLlm
) -> None:
    with run_server(_server_settings(tmp_path, database_url, fake, max_wall_s=WALL_S)) as s, s.client() as c:
        seeded = seed(s.aw.engine)
        case_id = new_case(c, seeded)
        script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]}))])
        fake.delay_s = ANSWER_DELAY_S
        began = time.monotonic()
        iid = start(c, case_id)
        _wait_for(lambda: bool(fake.sent))  # the prompt entry is stored; the model is thinking
        with s.aw.engine.connect() as conn, conn.begin():
            # hold the investigation's row (PostgreSQL: its row lock; SQLite: the write lock)
            conn.execute(text("UPDATE investigations SET updated_at = updated_at WHERE id = :i"), {"i": iid})
            time.sleep(max(0.0, HOLD_UNTIL_S - (time.monotonic() - began)))
        doc = wait_done(c, iid)
        fake.reset()
        assert doc["status"] == "failed", doc
        assert doc["error"] == f"investigations.max_wall_s: not done within {WALL_S} s"
        entries = all_entries(c, case_id, iid)
        assert [e["kind"] for e in entries] == ["prompt", "llm_response", "failure"]
        assert entries[-1]["summary"] == doc["error"]
        assert doc["entries"] == 3 and doc["ledger"]["verified"] is True, doc["ledger"]
