"""Shared helpers of the compliance tests: routes, real alerts in the store, uploads."""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding

BASE = "/api/v1/compliance"
EVIDENCE = f"{BASE}/evidence"
PDF = b"%PDF-1.4\n% a tiny test document\n"
_serial = itertools.count()


def statuses(c: Any, framework: str, headers: dict[str, str] | None = None, **params: Any) -> dict[str, str]:
    r = c.get(f"{BASE}/dashboard/{framework}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {row["id"]: row["status"] for row in r.json()["controls"]}


def control_row(c: Any, framework: str, control_id: str, **params: Any) -> dict[str, Any]:
    r = c.get(f"{BASE}/dashboard/{framework}", params=params)
    assert r.status_code == 200, r.text
    return next(row for row in r.json()["controls"] if row["id"] == control_id)


def record_alert(engine: Any, alert_type: str, age_s: float = 60.0) -> None:
    """A real stored alert of ``alert_type`` last seen ``age_s`` seconds ago."""
    n = next(_serial)
    ts = time.time() - age_s
    event = Event(body={}, event_id=f"cmp-e{n}-{ts}", event_type="ai.request", ts=ts, received_at=ts)
    finding = Finding(
        "test", f"cmp-rule-{n}", f"Alert {n}", 5, [event], alert_type=alert_type, dedup_key=f"cmp-{n}-{ts}"
    )
    ((_, is_new),) = store_findings(engine, [finding], 300)
    assert is_new


def link(control_id: str, **extra: Any) -> dict[str, Any]:
    return {"control_id": control_id, "title": "Policy page", "url": "https://intranet.example/policy", **extra}


def document(control_id: str, data: bytes = PDF, content_type: str = "application/pdf", **extra: Any) -> dict[str, Any]:
    doc = {"name": "report.pdf", "content_type": content_type, "data": base64.b64encode(data).decode()}
    return {"control_id": control_id, "title": "Pen-test report", "document": doc, **extra}
