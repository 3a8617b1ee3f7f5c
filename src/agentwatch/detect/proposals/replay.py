"""Replaying stored data through a predicate: the events of a bounded window, and the events
of alerts analysts labelled true or false positive.

Both evals (one proposed rule) and baselines (the live rule set) run the same two passes, so
their numbers compare. Every pass is bounded: the window by ``proposals.max_window_events``
(newest first), the feedback by ``proposals.max_feedback_alerts`` alerts of at most
:data:`EVENTS_PER_ALERT` events each.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, and_, or_, select

from agentwatch.detect.schema import alert_feedback
from agentwatch.events.model import Event, iso
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import events

PAGE = 100  # events read per query: at most 100 bodies (of up to 1 MB each) held at once
CHUNK = 500
EVENTS_PER_ALERT = 10
VERDICTS_PER_ALERT = 5  # verdicts read per alert wanted (an alert may carry several)
TOP_ENTITIES = 20
SAMPLE_IDS = 20

Matches = Callable[[Event], bool]

_COLUMNS = (
    events.c.seq,
    events.c.event_id,
    events.c.event_type,
    events.c.ts,
    events.c.received_at,
    events.c.source_format,
    events.c.session_id,
    events.c.parent_session_id,
    events.c.sequence,
    events.c.agent,
    events.c.severity,
    events.c.entities,
    events.c.trace_id,
    events.c.body,
)


def event_of(row: Any) -> Event:
    """The stored row (of :data:`_COLUMNS`) as the Event the pipeline's detectors saw."""
    (
        _,
        event_id,
        event_type,
        ts,
        received_at,
        fmt,
        session_id,
        parent,
        sequence,
        agent,
        severity,
        ents,
        trace,
        body,
    ) = tuple(row)
    return Event(
        orjson.loads(body),
        event_id,
        event_type,
        ts,
        received_at,
        fmt,
        session_id,
        parent,
        sequence,
        agent,
        severity or 0,
        orjson.loads(ents or "[]"),
        trace,
    )


@dataclass
class WindowRun:
    """What a pass over the window found. The matched events themselves are not kept (a window
    may hold up to 1,000,000 events of up to 1 MB each): their count, entities and first ids are
    counted as they pass, and so is how many of the first ``check_limit`` the live set misses."""

    since: float
    until: float
    events_read: int = 0
    truncated: bool = False  # the window held more events than were read
    events_hit: int = 0
    entities: Counter[tuple[str, str]] = field(default_factory=Counter)
    sample_ids: list[str] = field(default_factory=list)
    checked: int = 0  # matched events also run through the live set
    added: int = 0  # of those, the ones the live set does not match
    timed_out: bool = False  # the deadline passed before the window was read

    def hit(self, event: Event, known: Matches | None, check_limit: int) -> None:
        self.events_hit += 1
        for ent in {(x.get("type", ""), x.get("value", "")) for x in event.entities if isinstance(x, dict)}:
            self.entities[ent] += 1
        if len(self.sample_ids) < SAMPLE_IDS:
            self.sample_ids.append(event.event_id)
        if known is not None and self.checked < check_limit:
            self.checked += 1
            if not known(event):
                self.added += 1

    def as_json(self, max_hits: int | None = None) -> dict[str, Any]:
        top = sorted(self.entities.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ENTITIES]
        doc: dict[str, Any] = {
            "since": iso(self.since),
            "until": iso(self.until),
            "events_read": self.events_read,
            "truncated": self.truncated,
            "timed_out": self.timed_out,
            "events_hit": self.events_hit,
            "entities_hit": len(self.entities),
            "top_entities": [{"type": t, "value": v, "events": n} for (t, v), n in top],
            "sample_event_ids": list(self.sample_ids),
        }
        if max_hits is not None:
            doc["max_events_hit"] = max_hits
        return doc


def replay_window(
    engine: Engine,
    matches: Matches,
    since: float,
    until: float,
    max_events: int,
    known: Matches | None = None,
    check_limit: int = 0,
    deadline: float = math.inf,
) -> WindowRun:
    """The newest ``max_events`` stored events with ``since <= ts <= until`` through ``matches``
    (and the first ``check_limit`` matched ones through ``known``, the live set, when given);
    stops, ``timed_out``, once ``time.monotonic()`` passes ``deadline`` (a slow rule on big events)."""
    run = WindowRun(since, until)
    after: tuple[float, int] | None = None
    with engine.connect() as conn:
        while run.events_read < max_events:
            stmt = select(*_COLUMNS).where(events.c.ts >= since, events.c.ts <= until)
            if after is not None:
                ts, seq = after
                stmt = stmt.where(or_(events.c.ts < ts, and_(events.c.ts == ts, events.c.seq < seq)))
            size = min(PAGE, max_events - run.events_read)
            rows = conn.execute(stmt.order_by(events.c.ts.desc(), events.c.seq.desc()).limit(size)).all()
            for row in rows:
                if time.monotonic() > deadline:
                    run.timed_out = run.truncated = True
                    return run
                event = event_of(row)
                if matches(event):
                    run.hit(event, known, check_limit)
                run.events_read += 1
            if len(rows) < size:
                return run
            after = (rows[-1].ts, rows[-1].seq)
            del rows  # one page of bodies in memory at a time
        more = conn.execute(
            select(events.c.seq).where(events.c.ts >= since, events.c.ts <= until).limit(1).offset(max_events)
        )
        run.truncated = more.first() is not None
    return run


@dataclass
class FeedbackRun:
    tp_alerts: int = 0  # alerts whose newest verdict is a true positive
    fp_alerts: int = 0
    tp_hit: list[str] = field(default_factory=list)  # their ids where the predicate matched an event
    fp_hit: list[str] = field(default_factory=list)
    events_read: int = 0
    timed_out: bool = False  # the deadline passed before every judged alert was checked

    def as_json(self) -> dict[str, Any]:
        return {
            "tp_alerts": self.tp_alerts,
            "fp_alerts": self.fp_alerts,
            "tp_alerts_hit": len(self.tp_hit),
            "fp_alerts_hit": len(self.fp_hit),
            "tp_alert_ids_hit": self.tp_hit[:SAMPLE_IDS],
            "fp_alert_ids_hit": self.fp_hit[:SAMPLE_IDS],
            "events_read": self.events_read,
            "timed_out": self.timed_out,
        }


def labelled_alerts(engine: Engine, max_alerts: int) -> dict[str, str]:
    """alert id -> its newest verdict (tp or fp), for the newest ``max_alerts`` alerts judged."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_feedback.c.alert_id, alert_feedback.c.feedback)
            .order_by(alert_feedback.c.created_at.desc(), alert_feedback.c.id.desc())
            .limit(max_alerts * VERDICTS_PER_ALERT)
        )
        for alert_id, verdict in rows:
            if alert_id not in out and verdict in ("tp", "fp"):
                out[alert_id] = verdict
                if len(out) >= max_alerts:
                    break
    return out


def replay_feedback(engine: Engine, matches: Matches, max_alerts: int, deadline: float = math.inf) -> FeedbackRun:
    """Which TP- and FP-labelled alerts had an event ``matches`` takes (their stored events);
    stops, ``timed_out``, once ``time.monotonic()`` passes ``deadline``."""
    run = FeedbackRun()
    labels = labelled_alerts(engine, max_alerts)
    ids = list(labels)
    with engine.connect() as conn:
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            bodies = conn.execute(select(alerts.c.id, alerts.c.body).where(alerts.c.id.in_(chunk))).all()
            wanted: dict[str, list[str]] = {}
            for alert_id, body in bodies:
                doc = orjson.loads(body or "{}")
                refs = doc.get("event_ids") if isinstance(doc, dict) else None
                wanted[alert_id] = [r for r in (refs or []) if isinstance(r, str)][:EVENTS_PER_ALERT]
            every = list({r for refs in wanted.values() for r in refs})
            found: dict[str, Event] = {}
            for j in range(0, len(every), CHUNK):
                part = every[j : j + CHUNK]
                for row in conn.execute(select(*_COLUMNS).where(events.c.event_id.in_(part))):
                    found[row.event_id] = event_of(row)
            run.events_read += len(found)
            for alert_id in chunk:
                if time.monotonic() > deadline:
                    run.timed_out = True
                    return run
                if alert_id not in wanted:  # deleted since it was judged
                    continue
                label = labels[alert_id]
                hit = any(matches(found[r]) for r in wanted[alert_id] if r in found)
                if label == "tp":
                    run.tp_alerts += 1
                    if hit:
                        run.tp_hit.append(alert_id)
                else:
                    run.fp_alerts += 1
                    if hit:
                        run.fp_hit.append(alert_id)
    return run
