"""POST /api/v1/ingest against a real server and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import json

import orjson

from tests.conftest import OISP_EXAMPLES


def examples() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(OISP_EXAMPLES.glob("*.json"))]


def minimal(i: int = 0, **extra: object) -> dict:
    return {
        "event_type": "process.exec",
        "process": {"pid": 100 + i, "name": "python3"},
        "data": {"exe": "/usr/bin/python3"},
        **extra,
    }


def test_all_spec_examples_accepted_and_round_trip_unchanged(server):
    docs = examples()
    assert len(docs) == 9
    with server.client() as c:
        r = c.post("/api/v1/ingest", json=docs)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 9 and r.json()["rejected"] == 0 and r.json()["stored"] == 9
        for doc in docs:
            got = c.get(f"/api/events/{doc['event_id']}")
            assert got.status_code == 200
            assert got.json() == doc


def test_server_assigns_ulid_and_time_and_dedups_by_event_id(server):
    with server.client() as c:
        r = c.post("/api/v1/ingest", json=minimal())
        assert r.json()["stored"] == 1
        listed = c.get("/api/events").json()["events"]
        assert len(listed) == 1
        event_id = listed[0]["event_id"]
        assert len(event_id) == 26 and event_id.isalnum()  # a ULID
        assert listed[0]["ts"].endswith("Z")
        again = c.post("/api/v1/ingest", json=listed[0]).json()
        assert again == {**again, "accepted": 1, "stored": 0, "duplicates": 1}
        assert c.get("/api/events").json()["total"] == 1


def test_ndjson_gzip_and_per_line_rejections(server):
    lines = [
        orjson.dumps(minimal(1)),
        b"# a comment line is skipped",
        b"{not json",
        orjson.dumps({"event_type": "made.up", "data": {}}),
        orjson.dumps(minimal(2, ts="yesterday")),
        orjson.dumps({**minimal(3), "data": {"exe": 5}}),
        b"",
        orjson.dumps(minimal(4)),
    ]
    body = gzip.compress(b"\n".join(lines))
    with server.client() as c:
        r = c.post(
            "/api/v1/ingest", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"}
        )
        assert r.status_code == 200
        doc = r.json()
        assert doc["accepted"] == 2 and doc["rejected"] == 4
        by_index = {e["index"]: e for e in doc["errors"]}
        assert by_index[1]["field"] == "body" and "malformed JSON" in by_index[1]["reason"]
        assert by_index[2]["field"] == "event_type" and "unknown event type" in by_index[2]["reason"]
        assert by_index[3]["field"] == "ts" and "date-time" in by_index[3]["reason"]
        assert by_index[4]["field"] == "data.exe" and "string" in by_index[4]["reason"]
        assert c.get("/api/events").json()["total"] == 2


def test_bad_bodies_get_4xx_naming_the_rule_and_keep_earlier_events(server):
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=minimal()).json()["stored"] == 1
        cases = [
            (b"", 400, "body: is empty"),
            (b"[1, 2", 400, "malformed JSON array"),
            (b"\x1f\x8bnot-gzip", 400, "gzip"),
            (b"42", 200, None),
        ]
        for body, status, text in cases:
            r = c.post("/api/v1/ingest", content=body)
            assert r.status_code == status, (body, r.text)
            if text:
                assert text in r.json()["error"]["message"]
                assert r.json()["error"]["code"] == "INVALID_REQUEST"
        r = c.post("/api/v1/ingest", content=b"42")
        assert r.json()["errors"][0] == {"index": 0, "field": "event", "reason": "must be a JSON object"}
        too_big = b"x" * (server.aw.settings.ingest.max_body_bytes + 1)
        r = c.post("/api/v1/ingest", content=too_big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert c.get("/api/events").json()["total"] == 1


def test_gzip_bomb_is_refused(server):
    limit = server.aw.settings.ingest.max_body_bytes
    bomb = gzip.compress(b"[" + b" " * (limit + 10) + b"]")
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert "after gzip decoding" in r.json()["error"]["message"]


def test_gzip_members_are_joined_and_trailing_junk_refused(server):
    first, second = orjson.dumps(minimal(1)) + b"\n", orjson.dumps(minimal(2))
    two = gzip.compress(first) + gzip.compress(second)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"}
    limit = server.aw.settings.ingest.max_body_bytes
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=two, headers=headers)
        assert r.status_code == 200 and r.json()["stored"] == 2, r.text
        r = c.post("/api/v1/ingest", content=gzip.compress(first) + b"junk", headers=headers)
        assert r.status_code == 400
        assert r.json()["error"]["message"].startswith("body: data after the end of the gzip stream")
        half = gzip.compress(b" " * (limit // 2 + 10))
        r = c.post("/api/v1/ingest", content=half + half, headers=headers)
        assert r.status_code == 413 and "after gzip decoding" in r.json()["error"]["message"]
        assert c.get("/api/events").json()["total"] == 2


def test_unknown_envelope_field_is_named(server):
    with server.client() as c:
        r = c.post("/api/v1/ingest", json=minimal(surprise=1))
        assert r.json()["errors"][0]["field"] == "event"
        assert "surprise" in r.json()["errors"][0]["reason"]


def test_events_the_store_cannot_hold_are_refused_alone(server):
    """Nesting past 255 levels or an integer past 64 bits: refused at intake, naming the rule;
    the valid events of the same request are stored."""
    deep = orjson.dumps(minimal(1, attrs={"a": "X"})).replace(b'"X"', b"[" * 300 + b"]" * 300)
    huge = orjson.dumps(minimal(2)).replace(b'"pid":102', b'"pid":1' + b"0" * 25)  # parsed as a float
    unsigned = orjson.dumps(minimal(3, sequence=5)).replace(b'"pid":103', b'"pid":18446744073709551615')
    body = b"\n".join([orjson.dumps(minimal(0)), deep, huge, unsigned])
    with server.client() as c:
        r = c.post("/api/v1/ingest", content=body, headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["stored"] == 3 and out["rejected"] == 1
        assert out["errors"] == [{"index": 1, "field": "event", "reason": "nested deeper than 255 levels"}]
        stored = c.get("/api/events").json()
        assert stored["total"] == 3
        assert {e["process"]["pid"] for e in stored["events"]} == {100, 1e25, 2**64 - 1}  # kept as sent


def test_absurd_token_counts_do_not_break_stats(server):
    usage = {"prompt_tokens": 2**64, "completion_tokens": 5, "total_tokens": 1e300}
    response = {"event_type": "ai.response", "data": {"request_id": "r1", "usage": usage}}
    with server.client() as c:
        assert c.post("/api/v1/ingest", json=response).json()["stored"] == 1
        r = c.get("/api/stats")
        assert r.status_code == 200, r.text
        assert r.json()["ai"]["tokens"] == {"prompt": 0, "completion": 5, "total": 5}
