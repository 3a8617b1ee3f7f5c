"""Alert and feedback queries behind the Seerflow/AiSOC ``/api/v1/alerts`` routes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, func, or_, select

from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.alerts.model import to_json
from agentwatch.detect.schema import alert_feedback
from agentwatch.events.entities import canonical_address, canonical_domain, entity_id
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.schema import events
from agentwatch.store.snapshot import snapshot

ENTITY_KINDS = ("ip", "user", "host", "domain", "file", "process", "model", "agent")


def entity_ids_for(value: str) -> list[str]:
    """An entity UUID as is; any other value -> the ids it has as each entity kind (an address
    and a domain also in the spelling entities keep)."""
    try:
        return [str(uuid.UUID(value))]
    except ValueError:
        pass
    ids = [entity_id(kind, value) for kind in ENTITY_KINDS]
    # an address or a domain also in the spelling entities keep ("2001:DB8::1", "Example.COM.")
    address = canonical_address(value)
    if address is not None:
        ids.append(entity_id("ip", address))
    elif canonical_domain(value):
        ids.append(entity_id("domain", canonical_domain(value)))
    return list(dict.fromkeys(ids))


def tactic_tags(name: str) -> list[str]:
    """ "Defense Evasion" / "defense-evasion" / "defense_evasion" -> both spellings rules use:
    ``attack.defense_evasion`` (ATR, the rule pack) and ``attack.defense-evasion`` (SigmaHQ)."""
    words = name.strip().lower().replace("-", " ").replace("_", " ").split()
    return list(dict.fromkeys(["attack." + "_".join(words), "attack." + "-".join(words)]))


def technique_tags(prefix: str) -> list[str]:
    """T1059 -> attack.t1059; AML.T0051 -> atlas.aml.t0051 (prefix-matched)."""
    p = prefix.strip().lower()
    if p.startswith("aml."):
        return ["atlas." + p]
    return ["attack." + p]


@dataclass
class AlertQuery:
    since: float | None = None
    until: float | None = None
    types: list[str] = field(default_factory=list)
    min_severity: int | None = None
    entity: str | None = None
    tactic: str | None = None
    technique: str | None = None
    status: str | None = None
    rule_id: str | None = None
    assignee: str | None = None
    unassigned: bool = False  # only alerts nobody is assigned to
    page: int = 1
    limit: int = 100
    cursor: tuple[float, str] | None = None


def _conditions(q: AlertQuery) -> list[Any]:
    c: list[Any] = []
    if q.since is not None:
        c.append(alerts.c.last_seen >= q.since)
    if q.until is not None:
        c.append(alerts.c.first_seen <= q.until)
    if q.types:
        c.append(alerts.c.type.in_(q.types))
    if q.min_severity is not None:
        c.append(alerts.c.severity >= q.min_severity)
    if q.status:
        c.append(alerts.c.status == q.status)
    if q.rule_id:
        c.append(alerts.c.rule_id == q.rule_id)
    if q.assignee:
        c.append(alerts.c.assignee == q.assignee)
    if q.unassigned:
        c.append(alerts.c.assignee.is_(None))
    if q.entity:
        c.append(or_(*(alerts.c.entity_ids.contains(i, autoescape=True) for i in entity_ids_for(q.entity))))
    if q.tactic:
        c.append(or_(*(alerts.c.tags.contains(f'"{t}"', autoescape=True) for t in tactic_tags(q.tactic))))
    if q.technique:
        c.append(or_(*(alerts.c.tags.contains(f'"{t}', autoescape=True) for t in technique_tags(q.technique))))
    return c


def _alert(row: Any) -> dict[str, Any]:
    r = dict(row._mapping)
    return to_json(r, orjson.loads(r["body"]), orjson.loads(r["tags"]))


def list_alerts(engine: Engine, q: AlertQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    """(alerts newest first, total matching, next cursor when more remain)."""
    cond = _conditions(q)
    stmt = select(alerts)
    count = select(func.count()).select_from(alerts)
    if cond:
        stmt = stmt.where(and_(*cond))
        count = count.where(and_(*cond))
    if q.cursor is not None:
        last_seen, aid = q.cursor
        stmt = stmt.where(or_(alerts.c.last_seen < last_seen, and_(alerts.c.last_seen == last_seen, alerts.c.id < aid)))
    else:
        stmt = stmt.offset((q.page - 1) * q.limit)
    stmt = stmt.order_by(alerts.c.last_seen.desc(), alerts.c.id.desc()).limit(q.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(count).scalar_one()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1].last_seen, rows[-1].id) if more and rows else None
    return [_alert(r) for r in rows], int(total), nxt


def get_alert(engine: Engine, alert_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
        if row is None:
            return None
        doc = _alert(row)
        ids = doc["event_ids"][:100]
        bodies = {}
        if ids:
            for eid, body in conn.execute(select(events.c.event_id, events.c.body).where(events.c.event_id.in_(ids))):
                bodies[eid] = orjson.loads(body)
        fb = conn.execute(
            select(alert_feedback.c.feedback, func.count())
            .where(alert_feedback.c.alert_id == alert_id)
            .group_by(alert_feedback.c.feedback)
        ).all()
    doc["events"] = [bodies[i] for i in ids if i in bodies]
    counts = {k: int(n) for k, n in fb}
    doc["feedback"] = {"tp": counts.get("tp", 0), "fp": counts.get("fp", 0)}
    return doc


def alert_exists(engine: Engine, alert_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(alerts.c.id).where(alerts.c.id == alert_id)).first() is not None


def lock_alert(conn: Connection, alert_id: str) -> bool:
    """Take the dedup-key lock of ``alert_id`` (:mod:`agentwatch.alerts.dedup_lock`), which a
    merge, a triage change and a deletion of the alert hold too; whether the alert still exists
    once it is held (False: there is none, or it was deleted while this waited). An alert's
    dedup key never changes, so reading it before the lock is safe."""
    key = conn.execute(select(alerts.c.dedup_key).where(alerts.c.id == alert_id)).scalar_one_or_none()
    if key is None:
        return False
    lock_dedup_keys(conn, [key])
    return conn.execute(select(alerts.c.id).where(alerts.c.id == alert_id)).first() is not None


def add_feedback(engine: Engine, alert_id: str, verdict: str, note: str, origin: str, principal: str) -> bool:
    """Store one TP/FP verdict; False when the alert does not exist. Under the alert's lock: a
    verdict checked against an alert a concurrent deletion then removes would stay behind it."""
    with engine.begin() as conn:
        if not lock_alert(conn, alert_id):
            return False
        conn.execute(
            alert_feedback.insert().values(
                id=str(uuid.uuid4()),
                alert_id=alert_id,
                feedback=verdict,
                note=note,
                origin=origin,
                principal=principal[:256],
                created_at=time.time(),
            )
        )
    return True


def list_feedback(engine: Engine, alert_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    from agentwatch.events.model import iso

    with snapshot(engine) as conn:
        rows = conn.execute(
            select(alert_feedback)
            .where(alert_feedback.c.alert_id == alert_id)
            .order_by(alert_feedback.c.created_at.desc(), alert_feedback.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        total = conn.execute(
            select(func.count()).select_from(alert_feedback).where(alert_feedback.c.alert_id == alert_id)
        ).scalar_one()
    return [
        {
            "id": r.id,
            "alert_id": r.alert_id,
            "feedback": r.feedback,
            "note": r.note,
            "origin": r.origin,
            "principal": r.principal,
            "created_at": iso(r.created_at),
        }
        for r in rows
    ], int(total)
