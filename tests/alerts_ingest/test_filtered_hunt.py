"""An alert made by ``/alerts/submit`` names only events the store holds: events the runtime
process filter drops are counted as filtered and left out of the alert; on SQLite and
PostgreSQL (a server of its own: the filter applies server-wide)."""

from __future__ import annotations

from agentwatch.config import Settings
from tests.alerts_ingest.helpers import network_open, process_launch, tag
from tests.support.server import run_server

SUBMIT = "/api/v1/alerts/submit"


def test_events_the_process_filter_drops_are_not_named_by_the_alert(settings: Settings) -> None:
    host = f"f-{tag()}"
    with run_server(settings) as s, s.client() as c:
        assert c.post("/api/filters/process", json={"name": "sshd"}).status_code == 200
        curl, flow = process_launch(host), network_open(host, "10.7.7.7")  # curl is filtered out
        r = c.post(SUBMIT, json={"events": [curl, flow, process_launch(host, metadata={"uid": f"x-{host}"})]})
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["events"] == {"accepted": 3, "stored": 1, "duplicates": 0, "filtered": 2}
        (kept,) = doc["event_ids"]
        assert c.get(f"/api/events/{kept}").json()["data"]["dest"]["ip"] == "10.7.7.7"
        alert = doc["alert"]
        assert alert["event_ids"] == [kept]
        assert [e["event_id"] for e in alert["events"]] == [kept]
        assert alert["details"]["event_count"] == 1
        assert ("process", "/usr/bin/curl") not in {(e["type"], e["value"]) for e in alert["entities"]}
        none = c.post(SUBMIT, json={"events": [process_launch(f"g-{tag()}")]})
        assert none.status_code == 422, none.text
        assert none.json()["error"]["message"].startswith("events: none was stored")
