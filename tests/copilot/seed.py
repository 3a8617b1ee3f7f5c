"""Seeding the copilot tests: real alerts stored through the recorder's store function, each
naming the entities a test chooses, and the paths of the copilot routes."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import update

from agentwatch.alerts.recorder import store_findings
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.alerts_schema import alerts

CONTEXT = "/api/v1/copilot/context"


def unique(prefix: str = "h") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ent(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "value": value, "id": entity_id(kind, value)}


def alert(
    engine: Any,
    *entities: tuple[str, str],
    severity: int = 5,
    rule_id: str | None = None,
    tags: tuple[str, ...] = (),
    alert_type: str = "atr",
    title: str | None = None,
) -> dict[str, Any]:
    """A real stored alert naming ``entities`` ((type, value) pairs), new each call."""
    n = uuid.uuid4().hex
    event = Event(
        body={},
        event_id=f"cp-{n}",
        event_type="ai.request",
        ts=time.time(),
        received_at=time.time(),
        entities=[ent(k, v) for k, v in entities],
    )
    finding = Finding(
        "atr",
        rule_id or f"rule-{n[:8]}",
        title or f"Alert {n[:6]}",
        severity,
        [event],
        alert_type=alert_type,
        dedup_key=f"cp-{n}",
        tags=list(tags),
    )
    ((doc, is_new),) = store_findings(engine, [finding], 300)
    assert is_new
    return doc


def many(engine: Any, rule_id: str, n: int) -> None:
    """``n`` alerts of ``rule_id`` on distinct hosts, stored in one batch."""
    now = time.time()
    findings = []
    for _ in range(n):
        k = uuid.uuid4().hex
        event = Event(
            body={},
            event_id=f"cp-{k}",
            event_type="ai.request",
            ts=now,
            received_at=now,
            entities=[ent("host", f"h-{k[:10]}")],
        )
        findings.append(Finding("atr", rule_id, "Loud", 3, [event], alert_type="atr", dedup_key=f"cp-{k}"))
    assert len(store_findings(engine, findings, 300)) == n


def age_alert(engine: Any, alert_id: str, seconds: float) -> None:
    """Make the alert ``seconds`` older (as if stored that long ago), to put its SLA clock past due."""
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(created_at=time.time() - seconds))


def context(c: Any, kind: str, rid: str, **kw: Any) -> dict[str, Any]:
    r = c.get(f"{CONTEXT}/{kind}/{rid}", **kw)
    assert r.status_code == 200, r.text
    return r.json()


def kinds(doc: dict[str, Any]) -> list[str]:
    return [s["kind"] for s in doc["suggestions"]]


def of_kind(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in doc["suggestions"] if s["kind"] == kind]


def run(c: Any, action: dict[str, Any], **kw: Any) -> Any:
    return c.post(f"/api/v1/copilot/actions/{action['id']}:run", **kw)
