"""Deleting a session lowers the entity index's counts by the events that went with it, and an
entity no stored event names any more leaves the index (search, timeline)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from agentwatch.events.entities import entity_id
from agentwatch.store.entities_schema import entities
from tests.sessions.aop import ev
from tests.support.server import open_settings


@pytest.fixture
def settings(tmp_path, database_url):
    return open_settings(tmp_path, database_url)


def counts(srv) -> dict[str, int]:
    with srv.aw.engine.connect() as conn:
        return {r.value: r.event_count for r in conn.execute(select(entities.c.value, entities.c.event_count))}


def test_a_deleted_sessions_events_leave_the_entity_index(server):
    batch = [
        *(ev("keep-a", i, "session.heartbeat", agent="shared-agent") for i in range(1, 4)),
        *(ev("gone-b", i, "session.heartbeat", agent="shared-agent") for i in range(1, 3)),
        *(ev("gone-c", i, "session.heartbeat", agent="lonely-agent") for i in range(1, 3)),
    ]
    with server.client() as c:
        r = c.post("/events", json=batch)
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        assert {k: v for k, v in counts(server).items() if k.endswith("-agent")} == {
            "shared-agent": 5,
            "lonely-agent": 2,
        }
        assert c.delete("/sessions/gone-b").status_code == 200
        assert c.delete("/sessions/gone-c").status_code == 200
        # shared-agent: 5 events, 2 deleted; lonely-agent: all of its events deleted
        assert {k: v for k, v in counts(server).items() if k.endswith("-agent")} == {"shared-agent": 3}
        found = c.get("/api/v1/entities/search", params={"q": "lonely-agent"}).json()
        assert [e for e in found["entities"] if e["value"] == "lonely-agent"] == []
        lonely = entity_id("agent", "lonely-agent")
        assert c.get(f"/api/v1/entities/{lonely}/timeline").status_code == 404
        shared = [e for e in c.get("/api/v1/entities/search", params={"q": "shared-agent"}).json()["entities"]]
        assert [(e["value"], e["event_count"]) for e in shared] == [("shared-agent", 3)]
