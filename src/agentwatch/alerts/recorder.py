"""Turning findings into stored, deduplicated alerts, then publishing and notifying.

Within ``dedup_window_s`` (event time) of an alert's span, before or after it, a finding
with the same type, rule and dedup key increments that alert's ``count``, extends its
``first_seen``/``last_seen``, raises its severity to the highest seen and adds its entities
and tags (bounded: :data:`model.MAX_ENTITIES`, :data:`model.MAX_TAGS`) instead of creating a
new one. That holds for ``open`` and ``acknowledged`` alerts; a ``closed`` alert stays closed,
and a repeat opens a new alert (unassigned) beside it: closing says the analyst dealt with
what the alert held, so what comes after is triaged afresh. Alerts are committed before they
are published to the live hub or sent to outputs.

Analysts change an alert's status and assignee (:func:`change_alert`) and delete alerts
(:func:`delete_alert`) under the same dedup-key lock as the merge, so a repeat is counted
either before a change (and deleted with the alert) or after it (and sees it). A TP/FP
verdict and a finished LLM explanation are stored under it too, so neither stays behind a
deletion that came while it was on its way.

A detector that evaluates inside the transaction storing its events (the session rules)
stores its findings there too (:func:`record_in`): committed with the events or not at all,
so a crash right after the commit cannot lose an alert whose rule state already counted it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, and_, delete, select, update

from agentwatch.alerts import model
from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.alerts.explain import cache_key as explanation_key
from agentwatch.detect.queries import lock_alert
from agentwatch.detect.schema import alert_feedback
from agentwatch.events.model import SIMULATED_FORMAT
from agentwatch.pipeline.hub import LiveHub
from agentwatch.pipeline.pipeline import Finding
from agentwatch.soc.cases import deleted_alerts
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import kv
from agentwatch.store.writer_turns import turn_of

log = structlog.get_logger("agentwatch.alerts")
DEDUP_WINDOW_S = 300.0

AlertListener = Callable[[list[dict[str, Any]]], Awaitable[None]]


def _dedup_key(f: Finding) -> str:
    if f.dedup_key is not None:
        return f.dedup_key
    if f.session_id:
        return f"session:{f.session_id}"
    ids = sorted({ent["id"] for e in f.events for ent in e.entities})
    return ",".join(ids)


def _finding_ts(f: Finding) -> float:
    if f.ts is not None:
        return f.ts
    return max((e.ts for e in f.events), default=time.time())


def store_findings(engine: Engine, findings: Sequence[Finding], window_s: float) -> list[tuple[dict[str, Any], bool]]:
    """Persist findings; returns (alert JSON, is_new) for each alert created or updated."""
    with turn_of(engine), engine.begin() as conn:
        return [x for x in store_findings_in(conn, findings, window_s) if x is not None]


def record_in(conn: Connection, findings: Sequence[Finding], window_s: float = DEDUP_WINDOW_S) -> None:
    """Store ``findings`` in the caller's transaction and mark each with its alert (``stored_as``),
    so the finding sink publishes them once the transaction has committed, without storing them
    again."""
    for f, stored in zip(findings, store_findings_in(conn, findings, window_s), strict=True):
        f.stored_as = stored


# A detector names its rules freely; PostgreSQL refuses a longer value, and with it the batch.
RULE_ID_WIDTH = alerts.c.rule_id.type.length


def _in_window(row: dict[str, Any], ts: float, window_s: float) -> bool:
    """Whether a finding at ``ts`` repeats the alert ``row``: within the window of its span,
    before or after (a late event a day older is not a repeat of today's alert)."""
    return row["first_seen"] - window_s <= ts <= row["last_seen"] + window_s


def store_findings_in(
    conn: Connection, findings: Sequence[Finding], window_s: float
) -> list[tuple[dict[str, Any], bool] | None]:
    """Persist findings in ``conn``'s transaction; returns, for each finding in order, (alert
    JSON, is_new) of the alert it created or updated, or None for a finding already stored.

    A batch often holds many findings of one alert (a rule firing on every request): the alert
    is read once, folded in memory finding by finding, and written once at the end. The dedup
    keys are locked first (:mod:`agentwatch.alerts.dedup_lock`), so a concurrent batch waits
    for this one's commit and then sees its alerts.
    """
    out: list[tuple[dict[str, Any], bool] | None] = []
    now = time.time()
    keys = [model.dedup_hash(f.alert_type, f.rule_id, _dedup_key(f)) for f in findings]
    lock_dedup_keys(conn, keys)
    touched: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}  # dedup key -> alerts (row, body)
    dirty: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # alert id -> (row, body) to write
    for f, key in zip(findings, keys, strict=True):
        ts = _finding_ts(f)
        severity = max(0, min(10, int(f.severity)))
        event_ids = [e.event_id for e in f.events][: model.MAX_EVENT_IDS]
        near = [hit for hit in touched.get(key, []) if _in_window(hit[0], ts, window_s)]
        if near:
            row, body = max(near, key=lambda hit: hit[0]["last_seen"])
        else:
            existing = conn.execute(
                select(alerts)
                .where(
                    and_(
                        alerts.c.dedup_key == key,
                        alerts.c.last_seen >= ts - window_s,
                        alerts.c.first_seen <= ts + window_s,
                        alerts.c.status != "closed",
                    )
                )
                .order_by(alerts.c.last_seen.desc())
                .limit(1)
            ).first()
            row, body = (dict(existing._mapping), {}) if existing is not None else ({}, {})
            if existing is not None:
                body = orjson.loads(row["body"])
                touched.setdefault(key, []).append((row, body))
        entities: dict[str, dict[str, str]] = {}
        for e in f.events:
            for ent in e.entities:
                entities.setdefault(ent["id"], ent)
        if row:
            merged = list(dict.fromkeys([*body.get("event_ids", []), *event_ids]))[: model.MAX_EVENT_IDS]
            body["event_ids"] = merged
            # a repeat may name more entities (another host, user) and carry more tags
            body["entities"], entity_ids = model.merge_entities(
                body.get("entities", []), row["entity_ids"], entities.values()
            )
            tags = model.merge_tags(orjson.loads(row["tags"]), f.tags)
            row.update(
                count=row["count"] + 1,
                last_seen=max(row["last_seen"], ts),
                first_seen=min(row["first_seen"], ts),
                severity=max(row["severity"], severity),
                updated_at=now,
                entity_ids=entity_ids,
                tags=orjson.dumps(tags).decode(),
            )
            dirty[row["id"]] = (row, body)
            out.append((model.to_json(row, body, tags), False))
            continue
        opening = event_ids[0] if event_ids else f"{ts}"
        # the rule's own tags, all of them (its ATT&CK ones may come after many others): the cap
        # bounds what repeats add, and the tactic/technique filters must find the alert by any
        tags = list(dict.fromkeys(f.tags))
        if f.events and all(e.source_format == SIMULATED_FORMAT for e in f.events):
            tags.append(model.SIMULATED_TAG)
        body = {"entities": list(entities.values())[: model.MAX_ENTITIES], "event_ids": event_ids, "details": f.details}
        row = {
            "id": model.alert_id(key, opening),
            "dedup_key": key,
            "type": f.alert_type,
            "detector": f.detector,
            "rule_id": f.rule_id[:RULE_ID_WIDTH],
            "title": f.title[:1000],
            "message": (f.message or f.title)[:4000],
            "severity": severity,
            "status": "open",
            "assignee": None,
            "first_seen": ts,
            "last_seen": ts,
            "created_at": now,
            "updated_at": now,
            "count": 1,
            "session_id": f.session_id,
            "entity_ids": " ".join(entities),
            "tags": orjson.dumps(tags).decode(),
            "body": orjson.dumps(body).decode(),
        }
        if conn.execute(select(alerts.c.id).where(alerts.c.id == row["id"])).first() is not None:
            out.append(None)  # the same finding replayed: already stored
            continue
        conn.execute(alerts.insert().values(**row))
        touched.setdefault(key, []).append((row, body))
        out.append((model.to_json(row, body, tags), True))
    for alert_id, (row, body) in dirty.items():
        conn.execute(
            update(alerts)
            .where(alerts.c.id == alert_id)
            .values(
                count=row["count"],
                last_seen=row["last_seen"],
                first_seen=row["first_seen"],
                severity=row["severity"],
                updated_at=now,
                entity_ids=row["entity_ids"],
                tags=row["tags"],
                body=orjson.dumps(body).decode(),
            )
        )
    return out


def change_alert(engine: Engine, alert_id: str, changes: dict[str, Any]) -> bool:
    """Set ``status`` and/or ``assignee`` (None: unassigned); False when the alert does not exist."""
    unknown = set(changes) - {"status", "assignee"}
    if unknown:
        raise ValueError(f"not a changeable alert field: {', '.join(sorted(unknown))}")
    with engine.begin() as conn:
        if not lock_alert(conn, alert_id):
            return False
        done = conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**changes, updated_at=time.time()))
        return done.rowcount == 1  # 0: deleted meanwhile with its session (which takes no lock)


def delete_alert(engine: Engine, alert_id: str) -> dict[str, int] | None:
    """Delete an alert with what refers to it (its feedback, its cached LLM explanation), in one
    transaction; how many rows went, or None when the alert does not exist."""
    with engine.begin() as conn:
        if not lock_alert(conn, alert_id):
            return None
        feedback = delete_dependents(conn, [alert_id])
        if conn.execute(delete(alerts).where(alerts.c.id == alert_id)).rowcount != 1:
            return None  # deleted meanwhile with its session (which takes no lock)
    return {"alerts": 1, "feedback": feedback}


DEPENDENTS_CHUNK = 5_000


def delete_dependents(conn: Connection, alert_ids: list[str]) -> int:
    """Delete what refers to these alerts (their feedback, their cached LLM explanations, their
    links to cases) in the caller's transaction, which deletes the alerts themselves; returns
    the feedback rows gone. The cases stay: only their link to the alert goes, and each case
    that lost one records it (:mod:`agentwatch.soc.cases.deleted_alerts`)."""
    gone = 0
    # a chunk at a time: a session may hold more alerts than one statement takes parameters
    # (65,535 on PostgreSQL), and then the whole deletion would fail
    for i in range(0, len(alert_ids), DEPENDENTS_CHUNK):
        chunk = alert_ids[i : i + DEPENDENTS_CHUNK]
        gone += conn.execute(delete(alert_feedback).where(alert_feedback.c.alert_id.in_(chunk))).rowcount or 0
        conn.execute(delete(kv).where(kv.c.key.in_([explanation_key(a) for a in chunk])))
    deleted_alerts.unlink(conn, alert_ids, DEPENDENTS_CHUNK)
    return gone


class AlertRecorder:
    """The pipeline's finding sink; also called directly by non-pipeline sources."""

    def __init__(self, engine: Engine, hub: LiveHub, window_s: float = DEDUP_WINDOW_S) -> None:
        self.engine = engine
        self.hub = hub
        self.window_s = window_s
        self.listeners: list[AlertListener] = []

    async def __call__(self, findings: list[Finding]) -> list[dict[str, Any]]:
        return await self.record(findings)

    async def record(self, findings: list[Finding]) -> list[dict[str, Any]]:
        if not findings:
            return []
        pending = [f for f in findings if f.stored_as is None]
        stored = [f.stored_as for f in findings if f.stored_as is not None]  # stored with their events
        if pending:
            stored += await asyncio.to_thread(store_findings, self.engine, pending, self.window_s)
        changed = [a for a, _new in stored]
        for alert in changed:
            self.hub.publish("alert", alert)
        # a simulated attack's alerts are stored and shown, but notify no one and start no playbook
        new = [a for a, is_new in stored if is_new and model.SIMULATED_TAG not in a.get("tags", ())]
        if new:
            for listener in self.listeners:
                try:
                    await listener(new)
                except Exception:
                    log.exception("alerts.listener_failed")
        return changed
