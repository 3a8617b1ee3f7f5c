"""Entity risk scores (AiSOC's risk-based alerting): each alert naming an entity adds its
severity, decayed with a half-life, to the entity's score.

An alert of severity ``s`` whose latest finding (``last_seen``, event time) is ``age`` seconds
before the reference time adds ``s * 0.5 ** (age / half_life)``. The reference time is event
time too, never the wall clock: by default the latest ``last_seen`` of any alert, so replaying
old traffic scores it as it scored live; ``at`` picks another moment (alerts after it do not
count). Alerts older than ``HORIZON_HALF_LIVES`` half-lives (each worth less than 0.1% of its
severity) are not read, and at most ``MAX_ALERTS`` alerts, newest first, are.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from agentwatch.events.model import iso
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.entities_schema import entities
from agentwatch.store.snapshot import snapshot

HORIZON_HALF_LIVES = 10
MAX_ALERTS = 100_000
MAX_CONTRIBUTORS = 50


@dataclass
class Scored:
    score: float = 0.0
    alerts: int = 0
    contributors: list[tuple[float, str]] = field(default_factory=list)  # (points, alert id), a min-heap


def entity_rows(engine: Engine, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The index's type, value and last event time of each of ``ids`` it holds."""
    if not ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(entities.c.id, entities.c.type, entities.c.value, entities.c.last_seen).where(entities.c.id.in_(ids))
        ).all()
    return {r.id: {"type": r.type, "value": r.value, "last_seen": r.last_seen} for r in rows}


def reference_time(engine: Engine) -> float | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(alerts.c.last_seen))).scalar_one_or_none()


def _read(engine: Engine, at: float, half_life: float) -> tuple[list[Any], bool]:
    stmt = (
        select(alerts.c.id, alerts.c.severity, alerts.c.last_seen, alerts.c.entity_ids)
        .where(alerts.c.last_seen <= at, alerts.c.last_seen >= at - HORIZON_HALF_LIVES * half_life)
        .order_by(alerts.c.last_seen.desc())
        .limit(MAX_ALERTS + 1)
    )
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
    return rows[:MAX_ALERTS], len(rows) > MAX_ALERTS


def score(engine: Engine, at: float, half_life: float, only: set[str] | None = None) -> tuple[dict[str, Scored], bool]:
    """Every entity's score at ``at`` (or only those of ``only``), and whether the alerts read
    were cut at ``MAX_ALERTS``."""
    rows, truncated = _read(engine, at, half_life)
    scored: dict[str, Scored] = defaultdict(Scored)
    for alert_id, severity, last_seen, entity_ids in rows:
        points = severity * 0.5 ** ((at - last_seen) / half_life)
        for eid in set(entity_ids.split()):
            if only is not None and eid not in only:
                continue
            s = scored[eid]
            s.score += points
            s.alerts += 1
            if len(s.contributors) < MAX_CONTRIBUTORS:
                heapq.heappush(s.contributors, (points, alert_id))
            elif points > s.contributors[0][0]:
                heapq.heapreplace(s.contributors, (points, alert_id))
    return dict(scored), truncated


def top(engine: Engine, at: float, half_life: float, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The ``limit`` entities of highest score, highest first (ties by id)."""
    scored, truncated = score(engine, at, half_life)
    best = heapq.nsmallest(limit, scored.items(), key=lambda kv: (-kv[1].score, kv[0]))
    names = entity_rows(engine, [eid for eid, _ in best])
    return [_entity(eid, s, names.get(eid)) for eid, s in best], truncated


def detail(engine: Engine, ids: list[str], at: float, half_life: float) -> tuple[dict[str, Any] | None, bool]:
    """The entity of ``ids`` (the ids one value has as each kind) that alerts name with the
    highest score (ties: the first of ``ids``), with its contributors; None when no alert of the
    horizon names any. The alerts are read once, whatever the number of ids."""
    scored, truncated = score(engine, at, half_life, only=set(ids))
    named = [eid for eid in ids if eid in scored]
    if not named:
        return None, truncated
    best = max(named, key=lambda eid: (scored[eid].score, -ids.index(eid)))
    s = scored[best]
    doc = _entity(best, s, entity_rows(engine, [best]).get(best))
    doc["contributors"] = [
        {"alert_id": alert_id, "points": round(points, 4)} for points, alert_id in sorted(s.contributors, reverse=True)
    ]
    return doc, truncated


def unscored(eid: str, named: dict[str, Any]) -> dict[str, Any]:
    """An entity no alert of the horizon names."""
    return {**_entity(eid, Scored(), named), "contributors": []}


def _entity(eid: str, s: Scored, named: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "entity_id": eid,
        "type": named["type"] if named else None,
        "value": named["value"] if named else None,
        "score": round(s.score, 4),
        "alerts": s.alerts,
        "last_seen": iso(named["last_seen"]) if named else None,
    }
