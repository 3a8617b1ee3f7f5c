"""``POST /api/v1/alerts`` (alerts from outside tools) and ``POST /api/v1/ingest/ocsf`` on a
real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from agentwatch.events.entities import entity_id
from tests.alerts_ingest.helpers import dns_query, process_launch, tag
from tests.support.server import RunningServer

ALERTS = "/api/v1/alerts"


def test_an_outside_alert_is_recorded_and_answered_as_get_answers_it(open_server: RunningServer) -> None:
    host = f"db-{tag()}"
    observed = datetime.fromtimestamp(int(time.time()) - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    alert = {
        "title": "Brute force",
        "severity": "critical",
        "description": "200 failed logins",
        "source": "wazuh",
        "rule_id": "5712",
        "entities": [{"type": "host", "value": host}, {"type": "ip", "value": "::FFFF:192.0.2.7"}],
        "tags": ["attack.t1110"],
        "observed_at": observed,
        "external_id": f"wz-{tag()}",
    }
    with open_server.client() as c:
        r = c.post(ALERTS, json=alert)
        assert r.status_code == 201, r.text
        doc = r.json()
        assert (doc["title"], doc["severity"], doc["message"], doc["rule_id"]) == (
            "Brute force",
            9,
            "200 failed logins",
            "5712",
        )
        assert (doc["detector"], doc["type"], doc["count"]) == ("external:wazuh", "external", 1)
        assert doc["tags"] == ["attack.t1110"]
        assert doc["first_seen"] == doc["last_seen"] == observed
        assert {(e["type"], e["value"], e["id"]) for e in doc["entities"]} == {
            ("host", host, entity_id("host", host)),
            ("ip", "192.0.2.7", entity_id("ip", "192.0.2.7")),
        }
        got = c.get(f"{ALERTS}/{doc['id']}").json()
        assert got == doc
        # the alert names a real stored event: its record as an OCSF Detection Finding
        (event,) = got["events"]
        assert (event["event_type"], event["ext"]["ocsf"]["finding_info"]["title"]) == (
            "ocsf.detection_finding",
            "Brute force",
        )


def test_the_same_alert_again_is_deduplicated_onto_the_first(open_server: RunningServer) -> None:
    host = f"h-{tag()}"
    alert = {"title": "Port scan", "source": "suricata", "entities": [{"type": "host", "value": host}]}
    with open_server.client() as c:
        first = c.post(ALERTS, json=alert)
        second = c.post(ALERTS, json={**alert, "severity": 8})
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.json()["id"] == first.json()["id"]
        assert (second.json()["count"], second.json()["severity"]) == (2, 8)
        assert len(second.json()["event_ids"]) == 2


def test_a_list_is_answered_with_each_stored_alert(open_server: RunningServer) -> None:
    a, b = f"a-{tag()}", f"b-{tag()}"
    with open_server.client() as c:
        r = c.post(ALERTS, json={"alerts": [{"title": a, "source": a}, {"title": b, "source": b}]})
        assert r.status_code == 201, r.text
        assert [x["title"] for x in r.json()["alerts"]] == [a, b]
        bare = c.post(ALERTS, json=[{"title": f"c-{tag()}"}])
        assert bare.status_code == 201 and len(bare.json()["alerts"]) == 1


def test_bad_alerts_are_refused_naming_the_field(open_server: RunningServer) -> None:
    cases = [
        ({"severity": 3}, "title"),
        ({"title": ""}, "title"),
        ({"title": "t", "severity": "urgent"}, "severity"),
        ({"title": "t", "entities": [{"type": "planet", "value": "x"}]}, "entities.0.type"),
        ({"title": "t", "entities": [{"type": "host", "value": "a\x1bb"}]}, "entities.0.value"),
        ({"title": "t", "observed_at": "yesterday"}, "observed_at"),
        ({"title": "t", "rule_id": "has space"}, "rule_id"),
        ({"title": "t", "description": "a\x00b"}, "description"),
        ({"alerts": []}, "alerts"),
        ({"alerts": [{"title": "ok"}, {"title": "t", "extra": 1}]}, "alerts.1.extra"),
    ]
    with open_server.client() as c:
        for body, field in cases:
            r = c.post(ALERTS, json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["message"].startswith(f"{field}:"), (body, r.text)
        many = c.post(ALERTS, json={"alerts": [{"title": "t"}] * 101})
        assert many.status_code == 413
        assert many.json()["error"]["message"] == "alerts: more than 100 alerts in one request (101)"
        assert c.post(ALERTS, content=b"x" * (512 * 1024 + 1)).status_code == 413


def test_ocsf_events_are_ingested_with_a_reason_per_bad_line(open_server: RunningServer) -> None:
    host = f"h-{tag()}"
    lines = [
        orjson.dumps(process_launch(host)),
        orjson.dumps({"class_uid": 4003}),
        orjson.dumps(dns_query(host, "x.example")),
        b"{broken",
        orjson.dumps({"class_uid": 4001, "time": 1, "dst_endpoint": []}),
    ]
    with open_server.client() as c:
        r = c.post("/api/v1/ingest/ocsf", content=b"\n".join(lines), headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["accepted"], doc["stored"], doc["rejected"]) == (2, 2, 3)
        assert [(e["index"], e["field"]) for e in doc["errors"]] == [(1, "time"), (3, "body"), (4, "dst_endpoint")]
        assert c.post("/api/v1/ingest/ocsf", content=b"").status_code == 400
