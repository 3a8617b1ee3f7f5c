"""``POST /api/v1/alerts/submit`` on a real server, on SQLite and PostgreSQL: events stored,
one alert naming them and their entities, caps, clamped times, idempotency keys."""

from __future__ import annotations

from typing import Any

import orjson

from tests.alerts_ingest.helpers import dns_query, network_open, now_ms, process_launch, tag
from tests.support.server import RunningServer

SUBMIT = "/api/v1/alerts/submit"


def submit(c: Any, body: Any, **headers: str) -> Any:
    return c.post(SUBMIT, content=orjson.dumps(body), headers={"content-type": "application/json", **headers})


def test_a_batch_is_stored_and_made_one_alert_naming_its_events_and_entities(open_server: RunningServer) -> None:
    host = f"web-{tag()}"
    events = [process_launch(host), network_open(host, "10.9.8.7"), dns_query(host, f"{host}.c2.example")]
    body = {"title": "Lateral movement", "severity": "high", "description": "smb after curl", "tags": ["t1021"]}
    with open_server.client() as c:
        r = submit(c, {**body, "events": events})
        assert r.status_code == 201, r.text
        doc = r.json()
        alert = doc["alert"]
        assert (alert["title"], alert["severity"], alert["message"], alert["tags"]) == (
            "Lateral movement",
            7,
            "smb after curl",
            ["t1021"],
        )
        assert (alert["type"], alert["detector"], alert["rule_id"], alert["count"]) == (
            "correlation",
            "aisoc.submit",
            "aisoc.submit",
            1,
        )
        assert doc["events"] == {"accepted": 3, "stored": 3, "duplicates": 0, "filtered": 0}
        assert alert["event_ids"] == doc["event_ids"] and len(doc["event_ids"]) == 3
        named = {(e["type"], e["value"]) for e in alert["entities"]}
        assert {("host", host), ("user", "alice"), ("process", "/usr/bin/curl"), ("ip", "10.9.8.7")} <= named
        assert ("domain", f"{host}.c2.example") in named
        assert doc["clamped"] == []
        # stored like any ingested event, and the alert reads back as the answer showed it
        stored = c.get(f"/api/events/{doc['event_ids'][1]}").json()
        assert (stored["event_type"], stored["data"]["dest"]["ip"]) == ("network.connect", "10.9.8.7")
        again = c.get(f"/api/v1/alerts/{alert['id']}").json()
        assert [e["event_id"] for e in again["events"]] == doc["event_ids"]
        assert again["entities"] == alert["entities"]


def test_severity_defaults_to_the_highest_event_and_a_bare_array_is_taken(open_server: RunningServer) -> None:
    host = f"h-{tag()}"
    with open_server.client() as c:
        r = submit(c, [network_open(host, "10.1.1.1"), process_launch(host)])  # OCSF Low (3) and High (7)
        assert r.status_code == 201, r.text
        assert (r.json()["alert"]["severity"], r.json()["alert"]["title"]) == (7, "Submitted OCSF events")


def test_times_outside_the_window_are_clamped_and_said_so(open_server: RunningServer) -> None:
    old = process_launch(f"h-{tag()}", time=978_307_200_000)  # 2001-01-01
    ahead = process_launch(f"h-{tag()}", time=now_ms() + 86_400_000)  # a day ahead
    with open_server.client() as c:
        r = submit(c, {"events": [old, ahead, process_launch(f"h-{tag()}")]})
        assert r.status_code == 201, r.text
        doc = r.json()
    window = doc["time_window"]
    assert [(n["index"], n["field"]) for n in doc["clamped"]] == [(0, "time"), (1, "time")]
    assert doc["clamped"][0]["given"] == "2001-01-01T00:00:00Z"
    assert doc["clamped"][0]["used"] == window["from"]
    assert doc["clamped"][1]["used"] == window["to"]


def test_the_same_body_again_repeats_its_events_and_counts_on_its_alert(open_server: RunningServer) -> None:
    body = {"title": "Repeat", "events": [process_launch(f"h-{tag()}")]}
    with open_server.client() as c:
        first = submit(c, body).json()
        second = submit(c, body)
        assert second.status_code == 200, second.text
        assert second.json()["event_ids"] == first["event_ids"]
        assert second.json()["events"]["duplicates"] == 1
        assert second.json()["alert"]["id"] == first["alert"]["id"]
        assert second.json()["alert"]["count"] == 2


def test_an_idempotency_key_answers_a_retry_with_the_first_answer(open_server: RunningServer) -> None:
    key = f"retry-{tag()}"
    body = {"title": "Once", "events": [process_launch(f"h-{tag()}")]}
    with open_server.client() as c:
        first = submit(c, body, **{"Idempotency-Key": key})
        retry = submit(c, body, **{"Idempotency-Key": key})
        assert (first.status_code, retry.status_code) == (201, 201)
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json() == first.json()
        assert c.get(f"/api/v1/alerts/{first.json()['alert']['id']}").json()["count"] == 1  # no second count
        other = submit(c, {**body, "title": "Another"}, **{"Idempotency-Key": key})
        assert other.status_code == 409, other.text
        assert "idempotency-key" in other.json()["error"]["message"]


def test_bad_idempotency_keys_are_refused(open_server: RunningServer) -> None:
    body = {"events": [process_launch("h")]}
    with open_server.client() as c:
        for key in ["x" * 129, "has space", "semi;colon", ""]:
            r = submit(c, body, **{"Idempotency-Key": key})
            assert r.status_code == 400, (key, r.text)
            assert r.json()["error"]["message"].startswith("header idempotency-key: must be 1-128 characters")


def test_each_cap_is_a_413_naming_its_rule(open_server: RunningServer) -> None:
    with open_server.client() as c:
        many = submit(c, {"events": [process_launch("h")] * 201})
        assert many.status_code == 413
        assert many.json()["error"]["message"] == "events: more than 200 events in one submission (201)"
        big = process_launch("h", message="x" * 70_000)
        large = submit(c, {"events": [process_launch("h"), big]})
        assert large.status_code == 413
        assert large.json()["error"]["message"].startswith("events[1]: larger than 65536 bytes")
        events = [process_launch("h", message="y" * 60_000) for _ in range(18)]  # each fits, not all
        total = submit(c, {"events": events})
        assert total.status_code == 413
        assert total.json()["error"]["message"] == "body: larger than 1048576 bytes"


def test_bad_events_refuse_the_submission_naming_each(open_server: RunningServer) -> None:
    host = f"h-{tag()}"
    events = [process_launch(host), {"class_uid": 1007}, {"time": now_ms()}, "text", {"class_uid": 1, "time": "x"}]
    with open_server.client() as c:
        r = submit(c, {"events": events})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["message"].startswith("events[1].time: is required")
        assert [(d["index"], d["field"]) for d in err["details"]] == [
            (1, "events[1].time"),
            (2, "events[2].class_uid"),
            (3, "events[3].event"),
            (4, "events[4].time"),
        ]
        # nothing of it was stored
        assert c.get("/api/v1/alerts", params={"entity": host}).json()["alerts"] == []


def test_bad_alert_fields_are_named(open_server: RunningServer) -> None:
    ev = [process_launch("h")]
    cases = [
        ({"title": " \u200b", "events": ev}, "title"),
        ({"title": "a\u202eb", "events": ev}, "title"),
        ({"severity": 11, "events": ev}, "severity"),
        ({"severity": True, "events": ev}, "severity"),
        ({"tags": ["ok", "bad\n"], "events": ev}, "tags.1"),
        ({"colour": "red", "events": ev}, "colour"),
        ({"type": "nope", "events": ev}, "type"),
        ({"events": []}, "events"),
        ({"events": "x"}, "events"),
        ({"title": "t"}, "events"),
    ]
    with open_server.client() as c:
        for body, field in cases:
            r = submit(c, body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["message"].startswith(f"{field}:"), (body, r.text)
        assert c.post(SUBMIT, content=b"{oops").status_code == 400
        assert c.post(SUBMIT, json={"events": [process_launch("h")]}, params={"x": "1"}).status_code == 400


def test_a_batch_larger_than_an_alert_names_keeps_the_other_ids_in_its_details(open_server: RunningServer) -> None:
    host = f"h-{tag()}"
    events = [process_launch(host, metadata={"uid": f"{host}-{i}"}) for i in range(150)]
    with open_server.client() as c:
        r = submit(c, {"events": events})
        assert r.status_code == 201, r.text
        alert = r.json()["alert"]
    assert alert["event_ids"] == [f"{host}-{i}" for i in range(100)]
    assert alert["details"] == {
        "source": "alerts/submit",
        "event_count": 150,
        "more_event_ids": [f"{host}-{i}" for i in range(100, 150)],
    }
