"""The AI investigator end to end on a real server (SQLite and PostgreSQL) against a scripted
fake LLM: a full run recorded in a verified ledger, its report's citations checked, secrets kept
out of the prompt, and replay (identical, diverging after the store changed, catching a tampered
entry or a ledger cut short)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import text

from tests.investigations.support import (
    AWS_KEY,
    LLM_KEY,
    MODEL,
    SECRET,
    add_events,
    all_entries,
    host_event,
    run_standard,
)
from tests.support.fake_llm import FakeLlm
from tests.support.server import RunningServer

KINDS = [
    "prompt",
    "llm_response",
    "tool_call",
    "tool_result",
    "tool_call",
    "tool_result",
    "prompt",
    "llm_response",
    "tool_call",
    "tool_result",
    "prompt",
    "llm_response",
    "citation",
    "citation",
    "citation",
    "report",
]


def test_a_full_run_records_every_step_in_a_verified_chain(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded, case_id, iid = run_standard(srv, c, fake)
    doc = c.get(f"/api/v1/investigations/{iid}").json()
    assert doc["case_id"] == case_id and doc["steps"] == 3 and doc["tokens"] == 360 and doc["model"] == MODEL
    assert doc["ledger"] == {
        "verified": True,
        "entries": len(KINDS),
        "first_bad_seq": None,
        "reason": None,
        "mac": "valid",
    }
    entries = all_entries(c, case_id, limit=4)  # four pages
    assert [e["kind"] for e in entries] == KINDS
    assert [e["seq"] for e in entries] == list(range(1, len(KINDS) + 1))
    assert doc["head_hash"] == entries[-1]["hash"]
    prev = "0" * 64
    for e in entries:  # the chain, recomputed from the full entries
        full = c.get(f"/api/v1/investigations/{e['id']}").json()
        assert full["prev_hash"] == prev
        assert hashlib.sha256((prev + full["body"]).encode()).hexdigest() == full["hash"]
        prev = full["hash"]
    search = c.get(f"/api/v1/investigations/{entries[3]['id']}").json()["payload"]
    assert search["name"] == "search_events" and search["error"] is None
    assert {e["id"] for e in search["result"]["events"]} == set(seeded["event_ids"])
    # the report: the first finding cites what exists and was seen, the second is flagged
    report = doc["report"]
    first, second = report["findings"]
    assert first["verified"] is True and first["flags"] == []
    assert second["verified"] is False and "inv-no-such-event" in second["flags"][0]
    assert report["flagged"] == 1
    cites = [c.get(f"/api/v1/investigations/{e['id']}").json()["payload"] for e in entries if e["kind"] == "citation"]
    assert [(x["type"], x["exists"], x["seen"]) for x in cites] == [
        ("event", True, True),
        ("alert", True, True),
        ("event", False, False),
    ]
    # the model got the tools, then the tool results under their call ids
    assert len(fake.got) == 3
    assert {t["function"]["name"] for t in fake.got[0]["tools"]} == {
        "search_events",
        "get_alert",
        "entity_timeline",
        "intel_lookup",
    }
    tool_msgs = [m for m in fake.got[1]["messages"] if m["role"] == "tool"]
    asked = fake.got[1]["messages"][2]["tool_calls"]
    assert [m["tool_call_id"] for m in tool_msgs] == [a["id"] for a in asked]
    assert fake.sent[0].headers["authorization"] == f"Bearer {LLM_KEY}"


def test_no_secret_reaches_the_model_or_the_ledger(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    sent = orjson.dumps(fake.got).decode()
    assert "Agent pulled a script" in sent  # the case went out
    for secret in (SECRET, AWS_KEY, LLM_KEY):
        assert secret not in sent
    bodies = [c.get(f"/api/v1/investigations/{e['id']}").json()["body"] for e in all_entries(c, case_id, iid)]
    assert "***" in "".join(bodies)
    for secret in (SECRET, AWS_KEY, LLM_KEY):
        assert all(secret not in b for b in bodies)


def test_replay_of_an_unchanged_store_is_identical(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    asked = len(fake.sent)
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert len(fake.sent) == asked  # the model is not asked again
    assert doc["identical"] is True and doc["divergences"] == []
    assert doc["chain"]["verified"] is True
    assert doc["entries"] == {"recorded": len(KINDS), "replayed": len(KINDS)}
    assert [(t["tool"], t["same"]) for t in doc["tool_calls"]] == [
        ("search_events", True),
        ("get_alert", True),
        ("intel_lookup", True),
    ]
    # without a body: the case's latest finished investigation
    again = c.post(f"/api/v1/cases/{case_id}/investigations:replay")
    assert again.status_code == 200 and again.json()["investigation_id"] == iid


def test_replay_after_the_store_changed_shows_the_divergence(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    seeded, case_id, iid = run_standard(srv, c, fake)
    add_events(srv.aw.engine, [host_event(seeded["host"], 2_500_000.0, note="a later event")])
    doc = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid}).json()
    assert doc["identical"] is False
    assert doc["chain"]["verified"] is True  # the ledger itself is intact
    by_tool = {t["tool"]: t for t in doc["tool_calls"]}
    assert by_tool["search_events"]["same"] is False
    assert by_tool["search_events"]["recorded_hash"] != by_tool["search_events"]["replayed_hash"]
    assert by_tool["get_alert"]["same"] is True and by_tool["intel_lookup"]["same"] is True
    first = doc["divergences"][0]
    assert (first["seq"], first["kind"], first["step"]) == (4, "tool_result", 1)


def test_a_tampered_ledger_entry_is_detected(srv: RunningServer, c: Any, fake: FakeLlm) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    with srv.aw.engine.begin() as conn:
        body = conn.execute(
            text("SELECT body FROM investigation_entries WHERE investigation_id = :i AND seq = 2"), {"i": iid}
        ).scalar_one()
        changed = body.replace("search_events", "search_evenTs")
        assert changed != body
        conn.execute(
            text("UPDATE investigation_entries SET body = :b WHERE investigation_id = :i AND seq = 2"),
            {"b": changed, "i": iid},
        )
    ledger = c.get(f"/api/v1/investigations/{iid}").json()["ledger"]
    assert ledger["verified"] is False and ledger["first_bad_seq"] == 2
    replayed = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid}).json()
    assert replayed["identical"] is False and replayed["chain"]["first_bad_seq"] == 2


def test_a_ledger_cut_short_or_holding_a_malformed_answer_is_detected(
    srv: RunningServer, c: Any, fake: FakeLlm
) -> None:
    _seeded, case_id, iid = run_standard(srv, c, fake)
    with srv.aw.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM investigation_entries WHERE investigation_id = :i AND seq = :s"),
            {"i": iid, "s": len(KINDS)},
        )
    ledger = c.get(f"/api/v1/investigations/{iid}").json()["ledger"]
    assert ledger["verified"] is False and "recorded head" in ledger["reason"]
    # an answer changed into one the loop cannot follow: the replay says so, it does not crash
    with srv.aw.engine.begin() as conn:
        q = "SELECT body FROM investigation_entries WHERE investigation_id = :i AND seq = 2"
        doc = orjson.loads(conn.execute(text(q), {"i": iid}).scalar_one())
        doc["payload"]["message"]["tool_calls"] = "x"
        conn.execute(
            text("UPDATE investigation_entries SET body = :b WHERE investigation_id = :i AND seq = 2"),
            {"b": orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode(), "i": iid},
        )
    r = c.post(f"/api/v1/cases/{case_id}/investigations:replay", json={"investigation_id": iid})
    assert r.status_code == 200, r.text
    assert r.json()["identical"] is False and r.json()["chain"]["first_bad_seq"] == 2
    assert r.json()["divergences"][0]["seq"] == 2 and r.json()["tool_calls"][0]["same"] is False
