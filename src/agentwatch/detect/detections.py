"""Detections: the alerts rules raised, read from the alert store.

A detection is an alert made by the detection engine (detector ``detection``: Sigma,
correlation, ATR, the agentwatch pack, built-in rules) or recorded for an outside engine
(``POST /api/v1/detections``, detector ``external``). Its ``source`` is the rule's format:
``sigma``, ``correlation``, ``atr``, ``pack``, ``builtin`` or ``external``; pack rules raise
``atr``-type alerts, told apart by their rule ids (from the engine's catalogue).

Lists page by keyset on (created_at, id), newest detection first: the time the detection was
first recorded never changes, so a rule hitting again (which moves ``last_seen`` and ``count``)
while a client pages moves no detection across the cursor; each is listed once, on the page
where its place is. Stats read at most :data:`MAX_STATS_ROWS` alerts of the window (newest
first) and say when they cut.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, not_, or_, select

from agentwatch.alerts.model import severity_label, to_json
from agentwatch.detect.builtin.base import DETECTOR
from agentwatch.detect.coverage import attack_tags
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot

EXTERNAL = "external"
SOURCES = ("sigma", "correlation", "atr", "pack", "builtin", EXTERNAL)
MAX_STATS_ROWS = 50_000
LABELS = ("info", "low", "medium", "high", "critical")


@dataclass
class DetectionQuery:
    rule_id: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    severity_min: int | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None


def _source_condition(source: str, pack_ids: list[str]) -> Any:
    if source == EXTERNAL:
        return alerts.c.detector == EXTERNAL
    engine_made = alerts.c.detector == DETECTOR
    if source == "pack":
        return and_(engine_made, alerts.c.type == "atr", alerts.c.rule_id.in_(pack_ids or [""]))
    if source == "atr" and pack_ids:
        return and_(engine_made, alerts.c.type == "atr", not_(alerts.c.rule_id.in_(pack_ids)))
    return and_(engine_made, alerts.c.type == source)


def _conditions(q: DetectionQuery, pack_ids: list[str]) -> list[Any]:
    c: list[Any] = [alerts.c.detector.in_([DETECTOR, EXTERNAL])]
    if q.rule_id is not None:
        c.append(alerts.c.rule_id == q.rule_id)
    if q.source is not None:
        c.append(_source_condition(q.source, pack_ids))
    if q.since is not None:
        c.append(alerts.c.last_seen >= q.since)
    if q.until is not None:
        c.append(alerts.c.first_seen <= q.until)
    if q.severity_min is not None:
        c.append(alerts.c.severity >= q.severity_min)
    return c


def source_of(detector: str, alert_type: str, rule_id: str, pack: set[str]) -> str:
    if detector == EXTERNAL:
        return EXTERNAL
    if alert_type == "atr" and rule_id in pack:
        return "pack"
    return alert_type


def from_alert(alert: dict[str, Any], source: str) -> dict[str, Any]:
    """A detection: the alert's fields under AiSOC's names (``alert_id`` leads to the alert)."""
    details = alert["details"] if isinstance(alert["details"], dict) else {}
    return {
        "id": alert["id"],
        "alert_id": alert["id"],
        "rule_id": alert["rule_id"],
        "rule_title": alert["title"],
        "source": source,
        "engine": str(details.get("engine", "agentwatch")) if source == EXTERNAL else "agentwatch",
        "severity": alert["severity"],
        "severity_label": alert["severity_label"],
        "event_ids": alert["event_ids"],
        "entities": alert["entities"],
        "tags": alert["tags"],
        "count": alert["count"],
        "status": alert["status"],
        "detected_at": alert["last_seen"],
        "first_seen": alert["first_seen"],
        "last_seen": alert["last_seen"],
        "session_id": alert["session_id"],
        "message": alert["message"],
    }


def detection_doc(row: Any, pack: set[str]) -> dict[str, Any]:
    r = dict(row._mapping)
    alert = to_json(r, orjson.loads(r["body"]), orjson.loads(r["tags"]))
    return from_alert(alert, source_of(r["detector"], r["type"], r["rule_id"], pack))


def list_detections(engine: Engine, q: DetectionQuery, pack: set[str]) -> tuple[list[dict[str, Any]], int, str | None]:
    """(detections, newest first by when each was first recorded; total matching; next cursor
    when more remain)."""
    cond = and_(*_conditions(q, sorted(pack)))
    stmt = select(alerts).where(cond)
    if q.cursor is not None:  # (created_at, id): immutable, so later hits move no row across it
        created, aid = q.cursor
        stmt = stmt.where(or_(alerts.c.created_at < created, and_(alerts.c.created_at == created, alerts.c.id < aid)))
    stmt = stmt.order_by(alerts.c.created_at.desc(), alerts.c.id.desc()).limit(q.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(select(func.count()).select_from(alerts).where(cond)).scalar_one()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [detection_doc(r, pack) for r in rows], int(total), nxt


def stats(engine: Engine, window_s: float, top: int, pack: set[str], now: float | None = None) -> dict[str, Any]:
    """Counts over the last ``window_s`` seconds of event time (alerts whose span reaches into
    it): totals, by rule (the ``top`` with most detections, then most hits), severity, source
    and ATT&CK tactic."""
    end = time.time() if now is None else now
    start = end - window_s
    # alerts whose span meets the window: none reported ahead of the clock (not yet "in the last hours")
    cond = and_(*_conditions(DetectionQuery(since=start, until=end), sorted(pack)))
    cols = [
        alerts.c.detector,
        alerts.c.type,
        alerts.c.rule_id,
        alerts.c.title,
        alerts.c.severity,
        alerts.c.count,
        alerts.c.tags,
    ]
    with snapshot(engine) as conn:
        total = int(conn.execute(select(func.count()).select_from(alerts).where(cond)).scalar_one())
        rows = conn.execute(
            select(*cols).where(cond).order_by(alerts.c.last_seen.desc(), alerts.c.id.desc()).limit(MAX_STATS_ROWS)
        ).all()
    # a rule is its id within its source: an outside engine's rule may share an id with one of ours
    by_rule: Counter[tuple[str, str]] = Counter()
    hits_by_rule: Counter[tuple[str, str]] = Counter()
    titles: dict[tuple[str, str], str] = {}
    by_severity: Counter[str] = Counter()
    by_source: Counter[str] = Counter()
    by_tactic: Counter[str] = Counter()
    hits = 0
    for r in rows:
        source = source_of(r.detector, r.type, r.rule_id, pack)
        key = (r.rule_id, source)
        by_rule[key] += 1
        hits_by_rule[key] += int(r.count)
        titles.setdefault(key, r.title)
        by_severity[severity_label(int(r.severity))] += 1
        by_source[source] += 1
        hits += int(r.count)
        tactics, _ = attack_tags(orjson.loads(r.tags))
        for tactic in tactics or ("unmapped",):
            by_tactic[tactic] += 1
    ranked = sorted(by_rule.items(), key=lambda kv: (-kv[1], -hits_by_rule[kv[0]], kv[0]))[:top]
    return {
        "window": {"since": _iso(start), "until": _iso(end), "seconds": window_s},
        "totals": {"detections": total, "hits": hits, "rules": len(by_rule)},
        "by_rule": [
            {
                "rule_id": key[0],
                "rule_title": titles[key],
                "source": key[1],
                "detections": n,
                "hits": hits_by_rule[key],
            }
            for key, n in ranked
        ],
        "by_severity": {label: by_severity.get(label, 0) for label in LABELS},
        "by_source": {s: by_source.get(s, 0) for s in SOURCES},
        "by_tactic": dict(sorted(by_tactic.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rows_read": len(rows),
        "truncated": len(rows) < total,
    }


def _iso(ts: float) -> str:
    from agentwatch.events.model import iso

    return iso(ts)
