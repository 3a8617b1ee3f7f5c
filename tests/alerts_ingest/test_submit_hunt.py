"""Defects found in ``POST /api/v1/alerts/submit`` and ``POST /api/v1/alerts``, and the caps
of the submit route at their very edges; on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import orjson

from tests.alerts_ingest.helpers import process_launch, tag
from tests.support.server import RunningServer

SUBMIT = "/api/v1/alerts/submit"
MIB = 1024 * 1024
JSON = {"content-type": "application/json"}


def submit(c: Any, raw: bytes, **headers: str) -> Any:
    return c.post(SUBMIT, content=raw, headers={**JSON, **headers})


def padded(body: Any, size: int) -> bytes:
    """``body`` as JSON followed by blanks up to exactly ``size`` bytes."""
    raw = orjson.dumps(body)
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def pieces(raw: bytes) -> Iterator[bytes]:
    """A body sent in chunks, without Content-Length."""
    for start in range(0, len(raw), 100_000):
        yield raw[start : start + 100_000]


def sized_event(size: int) -> dict[str, Any]:
    """An OCSF event whose JSON is exactly ``size`` bytes."""
    event = process_launch(f"h-{tag()}", message="")
    event["message"] = "x" * (size - len(orjson.dumps(event)))
    assert len(orjson.dumps(event)) == size
    return event


def test_a_gzip_body_is_read_under_the_cap_after_inflating(open_server: RunningServer) -> None:
    host = f"gz-{tag()}"
    with open_server.client() as c:
        r = submit(c, gzip.compress(orjson.dumps([process_launch(host)])), **{"content-encoding": "gzip"})
        assert r.status_code == 201, r.text
        assert r.json()["events"]["stored"] == 1
        assert ("host", host) in {(e["type"], e["value"]) for e in r.json()["alert"]["entities"]}
        bomb = gzip.compress(padded([process_launch(host)], MIB + 1))  # small on the wire, not inflated
        over = submit(c, bomb, **{"content-encoding": "gzip"})
        assert over.status_code == 413, over.text
        assert over.json()["error"]["message"] == "body: larger than 1048576 bytes after gzip decoding"
        br = submit(c, orjson.dumps([process_launch(host)]), **{"content-encoding": "br"})
        assert br.status_code == 415, br.text


def test_a_body_with_a_byte_order_mark_is_taken(open_server: RunningServer) -> None:
    with open_server.client() as c:
        r = submit(c, b"\xef\xbb\xbf" + orjson.dumps([process_launch(f"bom-{tag()}")]))
        assert r.status_code == 201, r.text


def test_two_events_with_one_uid_refuse_the_submission(open_server: RunningServer) -> None:
    uid = f"u-{tag()}"
    first, second = process_launch("a", metadata={"uid": uid}), process_launch("b", metadata={"uid": uid})
    with open_server.client() as c:
        r = submit(c, orjson.dumps({"events": [process_launch("c"), first, second]}))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == "events[2].metadata.uid: repeats the id of events[1]"
        assert c.get(f"/api/events/{uid}").status_code == 404  # nothing of the batch was stored


def test_a_clamped_time_is_reported_as_it_was_sent(open_server: RunningServer) -> None:
    last_ms = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last millisecond there is
    with open_server.client() as c:
        r = submit(c, orjson.dumps([process_launch(f"far-{tag()}", time=last_ms)]))
        assert r.status_code == 201, r.text
        (note,) = r.json()["clamped"]
        assert note["given"] == "9999-12-31T23:59:59.999000Z"
        assert note["used"] == r.json()["time_window"]["to"]


def test_the_event_caps_hold_at_their_edges(open_server: RunningServer) -> None:
    with open_server.client() as c:
        many = [process_launch(f"n-{tag()}") for _ in range(200)]
        assert submit(c, orjson.dumps({"events": many})).status_code == 201
        exact = submit(c, orjson.dumps({"events": [sized_event(65536)]}))
        assert exact.status_code == 201, exact.text
        over = submit(c, orjson.dumps({"events": [process_launch("ok"), sized_event(65537)]}))
        assert over.status_code == 413
        assert over.json()["error"]["message"] == "events[1]: larger than 65536 bytes (65537)"


def test_the_body_cap_holds_at_its_edge_with_and_without_a_length(open_server: RunningServer) -> None:
    with open_server.client() as c:
        exact = padded({"events": [process_launch(f"b-{tag()}")]}, MIB)
        assert submit(c, exact).status_code == 201
        assert submit(c, exact + b" ").status_code == 413
        chunked = padded({"events": [process_launch(f"b-{tag()}")]}, MIB)
        r = c.post(SUBMIT, content=pieces(chunked), headers=JSON)
        assert r.status_code == 201, r.text
        r = c.post(SUBMIT, content=pieces(chunked + b"  "), headers=JSON)
        assert r.status_code == 413
        assert r.json()["error"]["message"] == "body: larger than 1048576 bytes"


def test_a_key_whose_first_request_was_refused_is_free_for_the_next(open_server: RunningServer) -> None:
    key = {"Idempotency-Key": f"k-{tag()}"}
    with open_server.client() as c:
        bad = submit(c, orjson.dumps({"events": [{"class_uid": 1007}]}), **key)
        assert bad.status_code == 400
        good = submit(c, orjson.dumps({"events": [process_launch(f"k-{tag()}")]}), **key)
        assert good.status_code == 201, good.text
        assert "idempotent-replayed" not in good.headers


def test_an_outside_alert_may_say_it_is_external(open_server: RunningServer) -> None:
    with open_server.client() as c:
        r = c.post("/api/v1/alerts", json={"title": f"ext-{tag()}", "type": "external"})
        assert r.status_code == 201, r.text
        assert r.json()["type"] == "external"


def test_an_outside_alert_names_only_real_addresses_and_domains(open_server: RunningServer) -> None:
    cases = [
        ({"type": "ip", "value": "not-an-ip"}, "must be an IP address"),
        ({"type": "ip", "value": "10.0.0.256"}, "must be an IP address"),
        ({"type": "domain", "value": "."}, "must be a domain name"),
    ]
    with open_server.client() as c:
        for entity, rule in cases:
            r = c.post("/api/v1/alerts", json={"title": "t", "entities": [{"type": "host", "value": "h"}, entity]})
            assert r.status_code == 400, (entity, r.text)
            assert r.json()["error"]["message"] == f"entities.1.value: Value error, {rule}", r.text
        ok = c.post("/api/v1/alerts", json={"title": "t", "entities": [{"type": "ip", "value": "2001:DB8::1"}]})
        assert ok.status_code == 201, ok.text
        assert [(e["type"], e["value"]) for e in ok.json()["entities"]] == [("ip", "2001:db8::1")]


def test_an_entity_named_twice_is_one_entity_of_the_alert(open_server: RunningServer) -> None:
    source, host = f"tool-{tag()}", f"h-{tag()}"
    once = [{"type": "host", "value": host}, {"type": "ip", "value": "192.0.2.4"}]
    twice = [*once, {"type": "host", "value": host}, {"type": "ip", "value": "::ffff:192.0.2.4"}]
    with open_server.client() as c:
        first = c.post("/api/v1/alerts", json={"title": "t", "source": source, "entities": once})
        assert first.status_code == 201, first.text
        again = c.post("/api/v1/alerts", json={"title": "t", "source": source, "entities": twice})
        assert again.status_code == 200, again.text  # the same source, rule and entities: a repeat
        assert (again.json()["id"], again.json()["count"]) == (first.json()["id"], 2)
        assert sorted((e["type"], e["value"]) for e in again.json()["entities"]) == [
            ("host", host),
            ("ip", "192.0.2.4"),
        ]
