"""Text holding the NUL character, on both stores: never a 500, nothing lost.

PostgreSQL refuses U+0000 in text, SQLite keeps it; events carry it all the same (a tool's
output, a path built for a null-byte injection) and clients put it in query parameters.
"""

from __future__ import annotations

import orjson

from tests.support.server import RunningServer


def _post(c, event: dict) -> dict:
    r = c.post("/api/v1/ingest", content=orjson.dumps(event), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_event_with_nul_in_indexed_fields_is_stored_and_read_back_exactly(server: RunningServer) -> None:
    event = {
        "event_id": "nul-event-1",
        "event_type": "process.exec",
        "host": {"hostname": "build\x00box"},
        "process": {"pid": 4242, "ppid": 1, "name": "sh\x00", "exe": "/tmp/x.png\x00.sh"},
        "data": {"exe": "/tmp/x.png\x00.sh", "args": ["sh", "-c", "cat /etc/passwd\x00"]},
    }
    with server.client() as c:
        assert _post(c, event)["stored"] == 1
        body = c.get("/api/events/nul-event-1").json()
        # the JSON body keeps the character exactly, on both stores
        assert body["host"]["hostname"] == "build\x00box"
        assert body["data"]["args"][2] == "cat /etc/passwd\x00"
        # a filter on an indexed column finds it by the value as sent
        listed = c.get("/api/events", params={"process": "sh\x00"}).json()
        assert [e["event_id"] for e in listed["events"]] == ["nul-event-1"]
        procs = {p["pid"]: p for p in c.get("/api/processes").json()["processes"]}
        assert 4242 in procs
        # the indexed copy is the value on SQLite, the value with U+FFFD for NUL on PostgreSQL
        expected = "sh\x00" if server.aw.engine.dialect.name == "sqlite" else "sh\ufffd"
        assert procs[4242]["name"] == expected


def test_an_llm_call_with_nul_in_its_model_is_counted(server: RunningServer) -> None:
    event = {
        "event_type": "ai.request",
        "data": {"request_id": "r-nul", "provider": {"name": "openai"}, "model": {"id": "gpt\x00"}},
    }
    with server.client() as c:
        out = _post(c, event)
        assert out["stored"] == 1, out
        ai = c.get("/api/stats").json()["ai"]
        assert ai["requests"] == 1
        model = "gpt\x00" if server.aw.engine.dialect.name == "sqlite" else "gpt\ufffd"
        assert ai["models"] == {model: 1}


def test_identifiers_with_control_characters_are_rejected_naming_the_field(server: RunningServer) -> None:
    with server.client() as c:
        for field in ("event_id", "session_id", "parent_session_id"):
            event = {"event_type": "process.exec", "data": {"exe": "/bin/true"}, field: "id\x00x"}
            out = _post(c, event)
            assert out["stored"] == 0 and out["rejected"] == 1, out
            assert out["errors"][0]["field"] == field
            assert out["errors"][0]["reason"] == "must not contain control characters"


def test_lookups_by_values_holding_nul_answer_not_found(server: RunningServer) -> None:
    with server.client() as c:
        assert c.get("/api/events/a%00b").status_code == 404
        assert c.get("/api/traces/a%00b").status_code == 404
        r = c.get("/api/events", params={"process": "nothing\x00here"})
        assert r.status_code == 200 and r.json()["total"] == 0


def test_an_aop_session_whose_goal_holds_nul_is_stored_and_exported_as_sent(server: RunningServer) -> None:
    raw = orjson.dumps(
        {
            "spec": "aop/1.0",
            "session_id": "nul-goal",
            "agent_id": "agent-1",
            "sequence": 1,
            "timestamp": "2026-04-03T10:00:00Z",
            "type": "session.started",
            "payload": {"goal": "read /etc/shadow\x00.txt"},
        }
    )
    with server.client() as c:
        r = c.post("/events", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        assert c.get("/sessions/nul-goal/export").content == raw + b"\n"
        goal = c.get("/sessions/nul-goal").json()["session"]["goal"]
        assert goal == (
            "read /etc/shadow\x00.txt" if server.aw.engine.dialect.name == "sqlite" else "read /etc/shadow\ufffd.txt"
        )
