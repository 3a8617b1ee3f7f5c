"""What ``DELETE /api/v1/cases/{id}`` does to the case's investigations. A case is never erased:
DELETE closes it and keeps it for the audit trail, so its ledger is kept too (append-only) and
stays readable with the case. But a closed case's ledger does not grow: an investigation running
when the case is closed stops before its next question to the model (recording why), and a closed
case cannot be investigated until it is reopened. Should the case's row ever be gone from the
store, nothing of its investigations or ledger is answered. Real server (SQLite and PostgreSQL),
fake LLM on loopback."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

from tests.investigations.support import (
    all_entries,
    calls,
    final,
    new_case,
    run_standard,
    script,
    seed,
    start,
    wait_done,
)
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer

CLOSED = "case_id: the case was closed; an investigation of a closed case stops"


def test_closing_a_case_stops_its_running_investigation(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]})), final({"summary": "never asked"})])
    fake.delay_s = 0.5
    iid = start(c, case_id)
    deadline = time.monotonic() + 10
    while not fake.sent:  # the first question is with the model
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert c.delete(f"/api/v1/cases/{case_id}").json()["status"] == "closed"
    doc = wait_done(c, iid)
    fake.delay_s = 0.0
    assert doc["status"] == "failed" and doc["error"] == CLOSED, doc
    assert len(fake.sent) == 1  # not asked again once the case was closed
    kinds = [e["kind"] for e in all_entries(c, case_id, iid)]
    assert kinds == ["prompt", "llm_response", "tool_call", "tool_result", "prompt", "failure"]
    assert doc["ledger"]["verified"] is True  # kept, whole, for the audit trail


def test_a_closed_case_is_not_investigated_until_reopened(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    assert c.delete(f"/api/v1/cases/{case_id}").status_code == 200
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["message"].startswith("case_id: the case is closed")
    assert c.get(f"/api/v1/cases/{case_id}/investigations").json()["investigations"] == []
    assert c.patch(f"/api/v1/cases/{case_id}", json={"status": "open"}).status_code == 200
    script(fake, [final({"summary": "reopened"})])
    assert wait_done(c, start(c, case_id))["status"] == "done"


def test_a_closed_cases_ledger_stays_readable_and_an_erased_cases_is_not(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    assert c.delete(f"/api/v1/cases/{case_id}").status_code == 200
    kept = all_entries(c, case_id, iid)
    assert kept and c.get(f"/api/v1/investigations/{iid}").json()["ledger"]["verified"] is True
    assert c.get(f"/api/v1/investigations/{kept[0]['id']}").status_code == 200
    with srv.aw.engine.begin() as conn:  # erased outside agentwatch (no route erases a case)
        conn.execute(text("DELETE FROM case_alerts WHERE case_id = :c"), {"c": case_id})
        conn.execute(text("DELETE FROM case_timeline WHERE case_id = :c"), {"c": case_id})
        conn.execute(text("DELETE FROM case_comments WHERE case_id = :c"), {"c": case_id})
        conn.execute(text("DELETE FROM cases WHERE id = :c"), {"c": case_id})
    for path in (
        f"/api/v1/cases/{case_id}/investigations",
        f"/api/v1/investigations/{iid}",
        f"/api/v1/investigations/{kept[0]['id']}",
    ):
        r = c.get(path)
        assert r.status_code == 404, (path, r.text)
    replay = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid})
    assert replay.status_code == 404
