"""POST /events: both payload dialects, the batch forms, idempotence and every bad-input case."""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.sessions.aop import ev


def stored_data(srv, session_id):
    """The normalized ``data`` of the one canonical event stored for a session."""
    with srv.aw.engine.connect() as conn:
        sql = (
            "SELECT body FROM events WHERE session_id = %s"
            if conn.dialect.name == "postgresql"
            else ("SELECT body FROM events WHERE session_id = ?")
        )
        (body,) = conn.exec_driver_sql(sql, (session_id,)).one()
    return orjson.loads(body)["data"]


def test_single_event_answers_ok_and_is_stored_as_sent(shared_server):
    doc = ev("s1", 1, "session.started", {"goal": "Summarize document"})
    raw = (
        b'{"spec": "aop/1.0",  "session_id": "s1", "agent_id": "agent-1", "sequence": 1, '
        b'"timestamp": "2026-04-03T10:00:00.000Z", "type": "session.started", '
        b'"payload": {"goal": "Summarize document"}}'
    )
    with shared_server.client() as c:
        r = c.post("/events", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["duplicate"] is False
        detail = c.get("/sessions/s1").json()
        assert detail["session"]["goal"] == "Summarize document"
        assert detail["events"] == [orjson.loads(raw)]
        assert doc["payload"] == detail["events"][0]["payload"]
        # the canonical event in the shared store: an aop.* type with the normalized payload
        assert stored_data(shared_server, "s1") == {"goal": "Summarize document"}


def test_resent_session_step_is_a_duplicate_not_a_second_event(shared_server):
    doc = ev("resent", 7, "cognition.thought", {"content": "x"})
    with shared_server.client() as c:
        assert c.post("/events", json=doc).json()["duplicate"] is False
        again = c.post("/events", json={**doc, "payload": {"content": "changed"}})
        assert again.status_code == 200 and again.json()["duplicate"] is True
        detail = c.get("/sessions/resent").json()
        assert [e["payload"] for e in detail["events"]] == [{"content": "x"}]
        assert detail["session"]["event_count"] == 1


DIALECTS = [
    # (type, program/SDK dialect, documented dialect, normalized data)
    ("cognition.thought", {"reasoning": "r", "confidence": "low"}, {"content": "r", "confidence": "low"}, "content"),
    ("cognition.decision", {"chosen": "A"}, {"decision": "A", "alternatives": ["B"]}, "decision"),
    ("session.ended", {"status": "failed"}, {"outcome": "failed"}, "outcome"),
    ("operation.tool_end", {"tool": "t", "success": False}, {"tool": "t", "outcome": "failure"}, "success"),
    ("operation.tool_end", {"tool": "t", "latency_ms": 12}, {"tool": "t", "duration_ms": 12}, "duration_ms"),
]


def test_both_dialects_normalize_to_the_same_data(shared_server):
    with shared_server.client() as c:
        for i, (kind, program, documented, key) in enumerate(DIALECTS):
            prog, docs = f"prog-{i}", f"docs-{i}"
            assert c.post("/events", json=ev(prog, 1, kind, program)).status_code == 200
            assert c.post("/events", json=ev(docs, 1, kind, documented)).status_code == 200
            got = {sid: stored_data(shared_server, sid) for sid in (prog, docs)}
            assert key in got[prog] and got[prog][key] == got[docs][key], (kind, got)


def test_program_dialect_drives_status_tokens_and_steps(shared_server):
    events = [
        ev("p", 1, "session.started", {"goal": "g"}),
        ev("p", 2, "session.heartbeat", {"step": 4, "token_spend": 1200}),
        ev(
            "p", 3, "session.ended", {"status": "failed", "total_steps": 9, "total_tokens": 4200, "total_cost_usd": 0.5}
        ),
    ]
    with shared_server.client() as c:
        r = c.post("/events", json=events)
        assert r.json()["stored"] == 3
        s = c.get("/sessions/p").json()["session"]
        assert s["status"] == "failed" and s["total_steps"] == 9 and s["total_tokens"] == 4200
        assert s["total_cost_usd"] == 0.5 and s["ended_at"] == "2026-04-03T10:00:03Z"
        # a late event after the end keeps the outcome
        assert c.post("/events", json=ev("p", 4, "session.heartbeat", {"step": 10})).status_code == 200
        s = c.get("/sessions/p").json()["session"]
        assert s["status"] == "failed" and s["total_steps"] == 10


def test_tool_end_paired_by_tool_call_id_alone(shared_server):
    events = [
        ev("paired", 1, "operation.tool_start", {"tool": "search", "tool_call_id": "c1"}),
        ev("paired", 2, "operation.tool_end", {"tool_call_id": "c1", "outcome": "success", "duration_ms": 5}),
    ]
    with shared_server.client() as c:
        assert c.post("/events", json=events).json()["stored"] == 2


def test_batch_as_array_and_ndjson_with_per_item_results(shared_server):
    good = [ev("b", i, "cognition.thought", {"content": str(i)}) for i in range(1, 4)]
    bad = {**ev("b", 9, "cognition.thought"), "sequence": "nine"}
    with shared_server.client() as c:
        r = c.post("/events", json=[good[0], bad, good[1]])
        doc = r.json()
        assert r.status_code == 200 and doc["ok"] is False
        assert doc["accepted"] == 2 and doc["rejected"] == 1 and doc["stored"] == 2
        assert doc["results"][1] == {
            "index": 1,
            "ok": False,
            "error": {"field": "sequence", "rule": "must be an integer"},
        }
        assert doc["results"][0]["ok"] and doc["results"][2]["ok"]
        nd = b"\n".join(orjson.dumps(e) for e in good) + b"\n"
        r = c.post("/events", content=gzip.compress(nd), headers={"Content-Encoding": "gzip"})
        assert r.json()["accepted"] == 3 and r.json()["stored"] == 1 and r.json()["duplicates"] == 2
        assert c.get("/sessions/b").json()["session"]["event_count"] == 3


BAD = [
    ({"spec": None}, "spec", "is required"),
    ({"spec": 1}, "spec", "must be a string"),
    ({"spec": "aop/2.0"}, "spec", "major version 2"),
    ({"spec": "v1"}, "spec", "must look like"),
    ({"spec": "aop/1.0\n"}, "spec", "must look like"),  # "$" with match let a final newline through
    ({"spec": "aop/\u0661.0"}, "spec", "must look like"),  # an Arabic-Indic one: a digit to \d, not to AOP
    ({"session_id": None}, "session_id", "is required"),
    ({"session_id": ""}, "session_id", "must not be empty"),
    ({"session_id": "x" * 129}, "session_id", "longer than 128"),
    ({"session_id": "a\nb"}, "session_id", "control characters"),
    ({"agent_id": 5}, "agent_id", "must be a string"),
    ({"sequence": None}, "sequence", "is required"),
    ({"sequence": "1"}, "sequence", "must be an integer"),
    ({"sequence": 1.5}, "sequence", "must be an integer"),
    ({"sequence": True}, "sequence", "must be an integer"),
    ({"sequence": -1}, "sequence", "between 0 and"),
    ({"timestamp": None}, "timestamp", "is required"),
    ({"timestamp": "2026-04-03 10:00"}, "timestamp", "RFC 3339"),
    ({"timestamp": "2026-04-03T10:00:00"}, "timestamp", "time zone"),
    ({"timestamp": 1712131200}, "timestamp", "RFC 3339"),
    ({"timestamp": "2026-04-03T10:00:00Z\n"}, "timestamp", "RFC 3339"),
    ({"type": "session.paused"}, "type", "must be one of"),
    ({"type": None}, "type", "is required"),
    ({"payload": None}, "payload", "is required"),
    ({"payload": []}, "payload", "must be a JSON object"),
    ({"parent_session_id": "s"}, "parent_session_id", "must differ"),
]


@pytest.mark.parametrize(("change", "field", "rule"), BAD)
def test_bad_envelope_gets_400_naming_the_field(shared_server, change, field, rule):
    doc = {**ev("s", 1, "cognition.thought", {"content": "x"}), **change}
    doc = {k: v for k, v in doc.items() if v is not None or k == "parent_session_id"}
    with shared_server.client() as c:
        r = c.post("/events", json=doc)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "INVALID_REQUEST"
        assert err["message"].startswith(f"{field}: ") and rule in err["message"]
        assert c.get("/sessions/s").status_code == 404


BAD_PAYLOADS = [
    ("cognition.thought", {"confidence": "very"}, "payload.confidence"),
    ("cognition.thought", {"confidence": 1.5}, "payload.confidence"),
    ("cognition.thought", {"reasoning": 3}, "payload.reasoning"),
    ("session.ended", {"outcome": "exploded"}, "payload.outcome"),
    ("session.ended", {"status": "weird"}, "payload.status"),
    ("session.heartbeat", {"step": "two"}, "payload.step"),
    ("session.heartbeat", {"token_spend": -5}, "payload.token_spend"),
    ("operation.tool_start", {}, "payload.tool"),
    ("operation.tool_end", {"success": True}, "payload.tool"),
    ("operation.tool_end", {"tool": "t", "success": "yes"}, "payload.success"),
    ("operation.tool_end", {"tool": "t", "latency_ms": "fast"}, "payload.latency_ms"),
    ("cognition.decision", {"alternatives": "B"}, "payload.alternatives"),
    ("operation.external_call", {"status_code": 7000}, "payload.status_code"),
    ("cognition.thought", {"content": "x", "tokens": 2**63 - 1}, "payload.tokens"),
    ("session.heartbeat", {"token_spend": 1e300}, "payload.token_spend"),
]


@pytest.mark.parametrize(("kind", "payload", "field"), BAD_PAYLOADS)
def test_bad_payload_gets_400_naming_the_field(shared_server, kind, payload, field):
    with shared_server.client() as c:
        r = c.post("/events", json=ev("s", 1, kind, payload))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith(f"{field}: ")


def test_bodies_that_cannot_be_read(shared_server):
    with shared_server.client() as c:
        r = c.post("/events", content=b"[" * 1000 + b"]" * 1000)
        assert r.status_code == 400 and r.json()["error"]["message"] == "body: nested too deeply"
        deep = orjson.dumps(ev("s", 1, "operation.tool_start", {"tool": "t", "input": "X"}))
        r = c.post("/events", content=deep.replace(b'"X"', b"[" * 300 + b"]" * 300))
        assert r.status_code == 400 and r.json()["error"]["message"] == "event: nested deeper than 255 levels"
        big = orjson.dumps(ev("s", 1, "cognition.thought", {"content": "x" * (65 * 1024)}))
        r = c.post("/events", content=big)
        assert r.status_code == 413 and "65536" in r.json()["error"]["message"]
        r = c.post("/events", content=b"")
        assert r.status_code == 400 and r.json()["error"]["message"] == "body: is empty"
        r = c.post("/events", content=b"[{]")
        assert r.status_code == 400 and "malformed JSON array" in r.json()["error"]["message"]
        r = c.post("/events", content=b"not json")
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("body: malformed JSON")
        r = c.post("/events", content=b'"a string"')
        assert r.status_code == 400 and r.json()["error"]["message"] == "event: must be a JSON object"
        # a batch item over the limit is rejected alone
        small = orjson.dumps(ev("other", 2, "cognition.thought", {"content": "ok"}))
        r = c.post("/events", content=small + b"\n" + big)
        assert r.status_code == 200 and r.json()["results"][1]["error"]["field"] == "event"
        too_many = b"\n".join([small] * 1001)
        assert c.post("/events", content=too_many).status_code == 413


def test_pretty_printed_single_event_is_one_event(shared_server):
    doc = ev("pp", 1, "session.started", {"goal": "g"})
    with shared_server.client() as c:
        r = c.post("/events", content=orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        assert r.status_code == 200 and r.json()["ok"] is True
        line = c.get("/sessions/pp/export").content
        assert orjson.loads(line) == doc and line.count(b"\n") == 1


def test_event_id_is_the_uuid5_of_session_and_sequence():
    import uuid

    from agentwatch.sessions.codec import AOP_NS, aop_event_id

    for sid, seq in [("s1", 1), ("weird é", 99), ("x" * 128, 2**63 - 1)]:
        assert aop_event_id(sid, seq) == str(uuid.uuid5(AOP_NS, f"{sid}\x1f{seq}"))
    assert aop_event_id("s1", 1) != aop_event_id("s1", 2) != aop_event_id("s2", 1)


def test_any_minor_version_of_spec_1_is_accepted(shared_server):
    with shared_server.client() as c:
        for i, spec in enumerate(["aop/1.0", "aop/1.7", "aop/1.2.3"]):
            doc = {**ev("minor", i + 1, "cognition.goal", {"goal": "g"}), "spec": spec}
            assert c.post("/events", json=doc).status_code == 200, spec
        assert c.get("/sessions/minor").json()["session"]["event_count"] == 3
