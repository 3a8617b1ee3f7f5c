"""A detection reported by an outside engine, turned into a finding for the alert recorder.

The outside engine names its rule, a severity, the events it matched (ids of events
agentwatch stored, its own ids, and/or one event embedded in the report, which the route
stores through the pipeline first and then names by id), the entities involved and when. The finding goes through
:mod:`agentwatch.alerts.recorder` like any other, so repeats within the dedup window
(same rule, same entities or session) merge into one alert instead of piling up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, select

from agentwatch.detect.detections import EXTERNAL
from agentwatch.events.entities import entity_id
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.schema import events

REFERENCE_TYPE = "external.reference"  # the type of an event id agentwatch has not stored


@dataclass
class Report:
    rule_id: str
    rule_title: str
    severity: int
    engine: str = EXTERNAL
    event_ids: list[str] = field(default_factory=list)
    entities: list[tuple[str, str]] = field(default_factory=list)  # (kind, value)
    ts: float | None = None
    tags: list[str] = field(default_factory=list)
    message: str = ""
    dedup_key: str | None = None


def stored_events(db: Engine, ids: list[str]) -> dict[str, Event]:
    """The stored events among ``ids`` (their time, session and entities; no body)."""
    if not ids:
        return {}
    cols = [
        events.c.event_id,
        events.c.event_type,
        events.c.ts,
        events.c.received_at,
        events.c.session_id,
        events.c.entities,
    ]
    with db.connect() as conn:
        rows = conn.execute(select(*cols).where(events.c.event_id.in_(ids))).all()
    return {
        r.event_id: Event(
            body={},
            event_id=r.event_id,
            event_type=r.event_type,
            ts=float(r.ts),
            received_at=float(r.received_at),
            session_id=r.session_id,
            entities=list(orjson.loads(r.entities or "[]")),
        )
        for r in rows
    }


def finding_of(report: Report, found: dict[str, Event], now: float | None = None) -> Finding:
    """The finding of ``report``: its events in the order given (stored ones with their own time
    and entities), the reported entities added to the first."""
    moment = time.time() if now is None else now
    ts = report.ts
    evs: list[Event] = []
    for eid in dict.fromkeys(report.event_ids):
        evs.append(
            found.get(eid)
            or Event(body={}, event_id=eid, event_type=REFERENCE_TYPE, ts=ts or moment, received_at=moment)
        )
    if ts is None:
        ts = max((e.ts for e in evs), default=moment)
    extra = [{"type": kind, "value": value, "id": entity_id(kind, value)} for kind, value in report.entities]
    if extra and evs:
        first = evs[0]
        known = {e["id"] for e in first.entities}
        evs[0] = Event(
            body=first.body,
            event_id=first.event_id,
            event_type=first.event_type,
            ts=first.ts,
            received_at=first.received_at,
            session_id=first.session_id,
            entities=[*first.entities, *(e for e in extra if e["id"] not in known)],
        )
    session = next((e.session_id for e in evs if e.session_id), None)
    return Finding(
        detector=EXTERNAL,
        rule_id=report.rule_id,
        title=report.rule_title,
        severity=report.severity,
        events=evs,
        alert_type=EXTERNAL,
        message=report.message or report.rule_title,
        tags=[t.lower() for t in report.tags],
        dedup_key=report.dedup_key,
        session_id=session,
        ts=ts,
        details={"engine": report.engine, "format": EXTERNAL, "reported_event_ids": len(report.event_ids)},
    )
