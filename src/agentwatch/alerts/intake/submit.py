"""What the alert ingest routes share: the time window event times are clamped to, events
committed through the pipeline, and one finding recorded as an alert and answered as
``GET /api/v1/alerts/{id}`` answers it.

Events go through :meth:`Pipeline.submit` like any ingested event (stored, counted, seen by
the detectors and the live streams); their entities are derived here first, so the alert
names them even on a scale-out API node, whose events are committed by a worker. An alert
names only the committed events the store holds (:func:`held`). The alert
goes through the recorder (:mod:`agentwatch.alerts.recorder`), so its dedup rules apply: the
same finding again within the window counts on the first alert instead of opening another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy import Engine, select
from starlette.concurrency import run_in_threadpool

from agentwatch.alerts import model
from agentwatch.api.errors import NotFound, Unavailable
from agentwatch.detect import queries
from agentwatch.events import entities
from agentwatch.events.model import Event, iso
from agentwatch.pipeline.pipeline import Finding, QueueFull, ShuttingDown
from agentwatch.store.schema import events as event_rows

PAST_S = 30 * 24 * 3600.0  # event times older than this are brought forward to it
FUTURE_S = 300.0  # and times further ahead than this back to it (clock skew allowed)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Window:
    """The event times a submission accepts as given: ``now - PAST_S`` .. ``now + FUTURE_S``."""

    now: float = field(default_factory=time.time)

    @property
    def low(self) -> float:
        return self.now - PAST_S

    @property
    def high(self) -> float:
        return self.now + FUTURE_S

    def clamp(self, ts: float) -> float:
        return min(max(ts, self.low), self.high)

    def as_dict(self) -> dict[str, str]:
        return {"from": iso(self.low), "to": iso(self.high)}


def iso_ms(ms: int) -> str:
    """Integer milliseconds since the epoch in RFC 3339, exactly: as float seconds, a time
    near the year 9999 loses its last milliseconds (``.999`` would read ``.998993``)."""
    return orjson.dumps(EPOCH + timedelta(milliseconds=ms), option=orjson.OPT_UTC_Z)[1:-1].decode()


def clamp_note(index: int, field_name: str, given_ms: int, used: float) -> dict[str, Any]:
    """How one clamped time is reported in an answer: as it was sent, and as it is used."""
    return {"index": index, "field": field_name, "given": iso_ms(given_ms), "used": iso(used)}


async def commit(request: Request, events: list[Event], source: str) -> dict[str, int]:
    """Derive the events' entities and commit them; 503 when the pipeline cannot take them."""
    aw = request.app.state.aw
    for event in events:
        if not event.entities:
            event.entities = entities.derive(event)
    aw.metrics.count_intake(source, len(events), 0)
    try:
        outcome = await aw.pipeline.submit(events)
    except QueueFull:
        raise Unavailable(
            "pipeline: queue full, retry later", headers={"Retry-After": str(QueueFull.retry_after_s)}
        ) from None
    except ShuttingDown:
        raise Unavailable("pipeline: server is shutting down", headers={"Retry-After": "5"}) from None
    return {
        "accepted": len(events),
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "filtered": outcome.filtered,
    }


def _held(engine: Engine, events: list[Event]) -> list[Event]:
    with engine.connect() as conn:
        ids = [e.event_id for e in events]
        found = set(conn.execute(select(event_rows.c.event_id).where(event_rows.c.event_id.in_(ids))).scalars())
    return [e for e in events if e.event_id in found]


async def held(request: Request, events: list[Event], counts: dict[str, int]) -> list[Event]:
    """The committed ``events`` the store holds, so an alert names no event that is not there:
    all of them unless the pipeline filtered some (the runtime process filter drops them)."""
    if not counts["filtered"]:
        return events
    return await run_in_threadpool(_held, request.app.state.aw.engine, events)


async def record(request: Request, finding: Finding) -> tuple[dict[str, Any], bool]:
    """Record ``finding``; the alert it made or joined, in the detail shape, and whether it is new.

    A finding stored before (the same events and dedup key, replayed) makes no change; its
    alert is then found by the id the recorder gave it."""
    aw = request.app.state.aw
    changed = await aw.alerts.record([finding])
    if changed:
        alert_id, is_new = changed[0]["id"], changed[0]["count"] == 1
    else:
        dedup = model.dedup_hash(finding.alert_type, finding.rule_id, finding.dedup_key or "")
        alert_id, is_new = model.alert_id(dedup, finding.events[0].event_id), False
    doc = await run_in_threadpool(queries.get_alert, aw.engine, alert_id)
    if doc is None:  # deleted by an analyst between the two steps
        raise NotFound("alert not found", {"alert_id": alert_id})
    return doc, is_new
