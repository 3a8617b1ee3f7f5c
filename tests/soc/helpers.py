"""Shared helpers of the cases tests: real alerts in the store, a case made through the API."""

from __future__ import annotations

import itertools
from typing import Any

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

MISSING = "00000000-0000-4000-8000-000000000000"
PASSWORD = "correct horse battery staple"
_serial = itertools.count()


def make_alert(engine: Any, severity: int = 6) -> str:
    """A real stored alert (through the recorder's store function), each with its own dedup key."""
    n = next(_serial)
    ent = {"type": "host", "value": f"h{n}", "id": entity_id("host", f"h{n}")}
    event = Event(
        body={}, event_id=f"case-e{n}", event_type="ai.request", ts=1000.0 + n, received_at=1000.0, entities=[ent]
    )
    finding = Finding("atr", f"rule-{n}", f"Alert {n}", severity, [event], alert_type="atr", dedup_key=f"case-{n}")
    ((alert, is_new),) = store_findings(engine, [finding], 300)
    assert is_new
    return alert["id"]


def create(c: Any, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "Suspicious model use")
    r = c.post("/api/v1/cases", json=body)
    assert r.status_code == 201, r.text
    return r.json()
