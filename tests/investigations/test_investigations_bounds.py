"""The investigator's bounds and rules on a real server (SQLite and PostgreSQL) against a
scripted fake LLM: steps, tokens, tool calls and result sizes, bad tool arguments, answers that
are not the report asked for, a failing backend, one investigation per case and at most
``max_per_case``, a ledger entry that cannot be stored, and investigations abandoned by a node."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import text

from tests.investigations.support import (
    BOUNDS,
    add_events,
    all_entries,
    calls,
    final,
    host_event,
    new_case,
    script,
    seed,
    start,
    wait_done,
)
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer


def test_the_step_bound_stops_an_investigation(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]}))])  # never reports
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "failed"
    assert doc["error"].startswith("investigations.max_steps:")
    assert len(fake.sent) == BOUNDS["max_steps"] and doc["steps"] == BOUNDS["max_steps"]
    entries = all_entries(c, case_id, doc["id"])
    assert entries[-1]["kind"] == "failure" and entries[-1]["summary"] == doc["error"]
    assert doc["ledger"]["verified"] is True


def test_the_token_budget_stops_an_investigation(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]}))], tokens=3_000)
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "failed" and doc["error"].startswith("investigations.max_tokens:")
    assert len(fake.sent) == 2  # 3,000 then 6,000 of 5,000
    assert fake.got[1]["max_tokens"] <= 2_000  # asked for at most what was left


def test_tool_results_and_calls_are_bounded(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    add_events(srv.aw.engine, [host_event(seeded["host"], 2_100_000.0 + i, pad="x" * 900) for i in range(12)])
    case_id = new_case(c, seeded)
    many = [("search_events", {"entity": seeded["host"], "limit": 50})] * 3 + [("get_alert", {"alert_id": "a"})] * 2
    script(fake, [calls(*many), final({"summary": "done", "findings": []})])
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "done", doc
    results = [
        c.get(f"/api/v1/investigations/{e['id']}").json()["payload"]
        for e in all_entries(c, case_id, doc["id"])
        if e["kind"] == "tool_result"
    ]
    assert len(results) == 5
    for r in results[:3]:
        assert r["chars"] <= BOUNDS["max_result_chars"]
        assert len(orjson.dumps(r["result"], option=orjson.OPT_SORT_KEYS)) <= BOUNDS["max_result_chars"]
        assert r["result"]["total"] == 14  # 14 events name the host; at most 5 asked, fewer fit
        assert 1 <= len(r["result"]["events"]) < BOUNDS["max_search_events"]
        assert r["result"]["events_left_out"] >= 1
    for r in results[3:]:  # beyond investigations.max_tool_calls: not run
        assert r["error"].startswith("skipped: at most 3 tool calls")


def test_bad_tool_arguments_answer_the_model_an_error(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    bad = calls(
        ("search_events", {"limit": 0}),
        ("get_alert", "not json"),
        ("drop_table", {}),
    )
    script(
        fake,
        [
            bad,
            calls(
                ("search_events", {"since": "yesterday"}),
                ("intel_lookup", {"indicator": "nope"}),
                ("get_alert", {"alert_id": "x", "more": 1}),
            ),
            final({"summary": "s"}),
        ],
    )
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "done", doc
    errors = [
        c.get(f"/api/v1/investigations/{e['id']}").json()["payload"]["error"]
        for e in all_entries(c, case_id, doc["id"])
        if e["kind"] == "tool_result"
    ]
    assert errors[0].startswith("limit: ")
    assert errors[1] == "arguments: must be a JSON object"
    assert errors[2].startswith("name: no tool 'drop_table'")
    assert errors[3].startswith("since: ")
    assert errors[4].startswith("indicator: ")
    assert errors[5].startswith("more: ")
    tool_msgs = [m for m in fake.got[1]["messages"] if m["role"] == "tool"]
    assert orjson.loads(tool_msgs[0]["content"])["error"] == errors[0]


def test_an_answer_that_is_not_the_report_json_is_kept_as_text(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    script(fake, [final("I think it is fine.")])
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "done"
    assert (
        doc["report"]["summary"] == "I think it is fine." and doc["report"]["format_error"] == "the answer is not JSON"
    )
    script(fake, [final('```json\n{"summary": "fenced", "findings": [{"title": "t"}]}\n```')])
    doc = wait_done(c, start(c, case_id))
    (finding,) = doc["report"]["findings"]
    assert doc["report"]["summary"] == "fenced" and finding["flags"] == ["cites no evidence"]


def test_a_failing_backend_fails_the_investigation(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    fake.reset()
    fake.status = 500
    doc = wait_done(c, start(c, case_id))
    assert doc["status"] == "failed" and doc["error"] == "llm: the backend answered 500: overloaded"
    kinds = [e["kind"] for e in all_entries(c, case_id, doc["id"])]
    assert kinds == ["prompt", "failure"]
    replayed = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": doc["id"]}).json()
    assert replayed["identical"] is True


def test_one_investigation_per_case_at_a_time(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    script(fake, [final({"summary": "slow"})])
    fake.delay_s = 0.6
    first = start(c, case_id)
    second = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    assert second.status_code == 409, second.text
    assert second.json()["error"]["message"].startswith("case_id: an investigation of this case is queued or running")
    running = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": first})
    assert running.status_code == 409 and "replay it once it is done" in running.text
    assert wait_done(c, first)["status"] == "done"
    fake.delay_s = 0.0
    assert wait_done(c, start(c, case_id))["status"] == "done"
    listed = c.get(f"/api/v1/cases/{case_id}/investigations").json()["investigations"]
    assert len(listed) == 2 and listed[1]["id"] == first


def test_an_entry_that_cannot_be_stored_stops_the_investigation(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded = seed(srv.aw.engine)
    case_id = new_case(c, seeded)
    engine = srv.aw.engine

    def squat(f: FakeLlm, body: dict[str, Any]) -> dict[str, Any]:
        # entries 1-5 are stored (prompt, answer, call, result, prompt); take position 6 first
        iid = f.iid  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO investigation_entries (investigation_id, seq, case_id, inv_created_at, kind, ts, body,"
                    " prev_hash, hash) VALUES (:i, 6, :c, 0, 'report', 0, '{}', :h, :h)"
                ),
                {"i": iid, "c": case_id, "h": "f" * 64},
            )
        return calls(("get_alert", {"alert_id": seeded["alert_id"]}))

    script(fake, [calls(("get_alert", {"alert_id": seeded["alert_id"]})), squat, final({"summary": "never"})])
    fake.delay_s = 0.3  # time to learn the id before the first answer
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    fake.iid = r.json()["id"]  # type: ignore[attr-defined]
    doc = wait_done(c, r.json()["id"])
    fake.delay_s = 0.0
    assert doc["status"] == "failed"
    assert doc["error"].startswith("ledger: entry 6 not stored")
    assert len(fake.sent) == 2  # nothing more was asked once an entry was lost
    assert doc["entries"] == 5 and doc["ledger"]["verified"] is False  # the squatter breaks the chain


def test_a_case_keeps_at_most_max_per_case_investigations(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    script(fake, [final({"summary": "nothing"})])
    for _ in range(BOUNDS["max_per_case"]):
        assert wait_done(c, start(c, case_id))["status"] == "done"
    r = c.post(f"/api/v1/cases/{case_id}/investigations:start")
    assert r.status_code == 409
    assert (
        r.json()["error"]["message"]
        == "case_id: the case holds 2 investigations, the most investigations.max_per_case allows"
    )


def test_an_investigation_left_running_by_a_stopped_node_is_abandoned(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    case_id = new_case(c, seed(srv.aw.engine))
    stale = str(uuid.uuid4())
    long_ago = time.time() - BOUNDS["max_wall_s"] - 121
    with srv.aw.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO investigations (id, case_id, active_case, status, started_by, nonce, model, created_at,"
                " updated_at, steps, tokens, entries, head_hash) VALUES (:i, :c, :c, 'running', 'x', 'n', '', :t, :t,"
                " 0, 0, 0, :h)"
            ),
            {"i": stale, "c": case_id, "t": long_ago, "h": "0" * 64},
        )
    script(fake, [final({"summary": "fresh"})])
    assert wait_done(c, start(c, case_id))["status"] == "done"
    old = c.get(f"/api/v1/investigations/{stale}").json()
    assert old["status"] == "failed" and old["error"] == "abandoned: its node stopped"
