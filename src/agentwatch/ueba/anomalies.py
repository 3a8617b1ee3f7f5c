"""Anomalies in the store: recorded with their alerts in one transaction, then listed, read,
counted and bucketed into the anomaly timeline.

The UEBA detector's findings carry their anomaly in ``details["anomaly"]``. :func:`record`
stores the findings' alerts (``alerts.recorder.record_in``, which marks each finding with its
alert so the recorder only publishes it) and the anomalies, each naming its alert, in one
transaction: an anomaly is never stored without its alert, nor an alert without its anomaly.
An alert deleted since is no longer named: the anomaly then shows ``alert_id`` null.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, Float, Integer, and_, cast, delete, distinct, func, or_, select

from agentwatch.alerts.recorder import record_in
from agentwatch.events.model import iso
from agentwatch.pipeline.pipeline import Finding
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.upsert import insert_ignore
from agentwatch.ueba.schema import ueba_anomalies as t


def record(engine: Engine, findings: Sequence[Finding]) -> None:
    """Store the findings' alerts and their anomalies in one transaction. When it fails, no
    finding stays marked as stored: the alert recorder, the next finding sink, stores the alerts."""
    try:
        _record(engine, findings)
    except BaseException:
        for f in findings:
            f.stored_as = None
        raise


def _record(engine: Engine, findings: Sequence[Finding]) -> None:
    rows = []
    with engine.begin() as conn:
        record_in(conn, findings)
        for f in findings:
            a = f.details["anomaly"]
            rows.append(
                {
                    "id": a["id"],
                    "entity_id": a["entity"]["id"],
                    "entity_type": a["entity"]["type"],
                    "entity_value": a["entity"]["value"],
                    "score": a["score"],
                    "severity": f.severity,
                    "kinds": " " + " ".join(r["kind"] for r in a["reasons"]) + " ",
                    "reasons": orjson.dumps(a["reasons"]).decode(),
                    "ts": a["ts"],
                    "source": a["source"][:64],
                    "event_ids": orjson.dumps(a["event_ids"]).decode(),
                    "alert_id": f.stored_as[0]["id"] if f.stored_as is not None else None,
                    "created_at": time.time(),
                }
            )
        insert_ignore(conn, t, rows, ["id"])


def prune(engine: Engine, before: float) -> int:
    """Delete the anomalies raised before ``before`` (epoch seconds); how many went."""
    with engine.begin() as conn:
        return conn.execute(delete(t).where(t.c.created_at < before)).rowcount or 0


def _with_alert() -> Any:
    """The anomalies, each with its alert's id when that alert still exists (``alive``)."""
    return select(t, alerts.c.id.label("alive")).select_from(t.outerjoin(alerts, alerts.c.id == t.c.alert_id))


def public(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "entity": {"id": row.entity_id, "type": row.entity_type, "value": row.entity_value},
        "score": row.score,
        "severity": row.severity,
        "reasons": orjson.loads(row.reasons),
        "ts": iso(row.ts),
        "source": row.source,
        "event_ids": orjson.loads(row.event_ids),
        "alert_id": row.alive,
        "created_at": iso(row.created_at),
    }


@dataclass
class AnomalyQuery:
    entity_id: str | None = None
    reason: str | None = None
    source: str | None = None
    min_score: float | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None  # (ts, id) of the last row given


def _conditions(q: AnomalyQuery) -> list[Any]:
    conds: list[Any] = []
    if q.entity_id is not None:
        conds.append(t.c.entity_id == q.entity_id)
    if q.reason is not None:
        conds.append(t.c.kinds.contains(f" {q.reason} ", autoescape=True))
    if q.source is not None:
        conds.append(t.c.source == q.source)
    if q.min_score is not None:
        conds.append(t.c.score >= q.min_score)
    if q.since is not None:
        conds.append(t.c.ts >= q.since)
    if q.until is not None:
        conds.append(t.c.ts < q.until)
    return conds


def search(engine: Engine, q: AnomalyQuery) -> tuple[list[dict[str, Any]], int, tuple[float, str] | None]:
    """Anomalies, newest (event time) first."""
    where = and_(True, *_conditions(q))
    page_where = where
    if q.cursor is not None:
        ts, aid = q.cursor
        page_where = and_(where, or_(t.c.ts < ts, and_(t.c.ts == ts, t.c.id > aid)))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
        rows = conn.execute(_with_alert().where(page_where).order_by(t.c.ts.desc(), t.c.id).limit(q.limit + 1)).all()
    more = len(rows) > q.limit
    page = rows[: q.limit]
    nxt = (page[-1].ts, page[-1].id) if more and page else None
    return [public(r) for r in page], int(total), nxt


def get(engine: Engine, anomaly_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(_with_alert().where(t.c.id == anomaly_id)).first()
    return public(row) if row is not None else None


def stats(engine: Engine) -> dict[str, Any]:
    """Counts of all stored anomalies: in all, per reason, per entity type, and the alerts they
    opened or joined that still exist."""
    with engine.connect() as conn:
        total, alive, entities, top, last = conn.execute(
            select(
                func.count(),
                func.count(distinct(alerts.c.id)),
                func.count(distinct(t.c.entity_id)),
                func.max(t.c.score),
                func.max(t.c.ts),
            ).select_from(t.outerjoin(alerts, alerts.c.id == t.c.alert_id))
        ).one()
        by_type = dict(conn.execute(select(t.c.entity_type, func.count()).group_by(t.c.entity_type)).all())
        by_reason = {}
        for kind in ("new_source", "new_template", "rare_hour", "burst"):
            by_reason[kind] = conn.execute(
                select(func.count()).select_from(t).where(t.c.kinds.contains(f" {kind} ", autoescape=True))
            ).scalar_one()
    return {
        "total": int(total),
        "alerts": int(alive),
        "entities": int(entities),
        "max_score": top,
        "last_ts": iso(last) if last is not None else None,
        "by_reason": by_reason,
        "by_entity_type": {k: int(v) for k, v in by_type.items()},
    }


def timeline(engine: Engine, start: float, step: float, buckets: int, source: str | None) -> list[dict[str, Any]]:
    """Anomalies in ``buckets`` buckets of ``step`` seconds from ``start`` (event time): per
    bucket their count, highest and mean score, and the distinct alerts they opened or joined
    (those not deleted since).
    Every bucket is listed, empty ones with zero counts and null scores."""
    end = start + step * buckets
    offset = (t.c.ts - start) / step
    # the bucket's index: PostgreSQL rounds a cast to an integer, SQLite truncates it
    index = cast(func.floor(offset), Integer) if engine.dialect.name == "postgresql" else cast(offset, Integer)
    conds = [t.c.ts >= start, t.c.ts < end]
    if source is not None:
        conds.append(t.c.source == source)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                index.label("i"),
                func.count(),
                func.max(t.c.score),
                func.avg(cast(t.c.score, Float)),
                func.count(distinct(alerts.c.id)),
            )
            .select_from(t.outerjoin(alerts, alerts.c.id == t.c.alert_id))
            .where(and_(*conds))
            .group_by(index)
        ).all()
    found = {int(r[0]): r for r in rows}
    out = []
    for i in range(buckets):
        r = found.get(i)
        out.append(
            {
                "ts": iso(start + i * step),
                "anomalies": int(r[1]) if r else 0,
                "max_score": round(float(r[2]), 4) if r else None,
                "mean_score": round(float(r[3]), 4) if r else None,
                "alerts": int(r[4]) if r else 0,
            }
        )
    return out
