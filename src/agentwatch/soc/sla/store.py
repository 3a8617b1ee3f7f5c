"""Stored SLA targets (seeded with the defaults of :mod:`bands` on first use) and the listing of
recorded breaches.

Each limit of a band judges from its own start: a change of ``acknowledge_minutes`` moves only
the acknowledge start, so the resolve clocks go on being judged as before (and the other way
round); the band enabled again moves both. ``effective_at`` is the last change of any field."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, or_, select, true, update

from agentwatch.events.model import iso
from agentwatch.soc.sla.bands import BANDS, BY_ID
from agentwatch.soc.sla.schema import sla_configs, sla_events
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.upsert import insert_ignore


@dataclass(frozen=True)
class Target:
    band: str
    acknowledge_minutes: int
    resolve_minutes: int
    enabled: bool
    effective_at: float  # the last change; 0.0: the defaults, in force since always
    acknowledge_effective_at: float = 0.0  # since when acknowledge_minutes judges
    resolve_effective_at: float = 0.0  # since when resolve_minutes judges

    def minutes(self, kind: str) -> int:
        """The limit of ``kind`` (acknowledge, resolve)."""
        return self.acknowledge_minutes if kind == "acknowledge" else self.resolve_minutes

    def starts(self, kind: str) -> float:
        """Since when the limit of ``kind`` judges the alerts."""
        return self.acknowledge_effective_at if kind == "acknowledge" else self.resolve_effective_at

    def as_json(self, updated_by: str | None = None) -> dict[str, Any]:
        band = BY_ID[self.band]
        return {
            "id": self.band,
            "severity_min": band.low,
            "severity_max": band.high,
            "acknowledge_minutes": self.acknowledge_minutes,
            "resolve_minutes": self.resolve_minutes,
            "enabled": self.enabled,
            "effective_at": _iso(self.effective_at),
            "acknowledge_effective_at": _iso(self.acknowledge_effective_at),
            "resolve_effective_at": _iso(self.resolve_effective_at),
            "updated_by": updated_by,
        }


def _iso(at: float) -> str | None:
    return iso(at) if at else None


def seed(conn: Connection) -> None:
    """Store the default target of each band that has none (a fresh store)."""
    rows = [
        {
            "id": b.id,
            "acknowledge_minutes": b.acknowledge_minutes,
            "resolve_minutes": b.resolve_minutes,
            "enabled": True,
            "effective_at": 0.0,
            "acknowledge_effective_at": 0.0,
            "resolve_effective_at": 0.0,
            "updated_by": None,
        }
        for b in BANDS
    ]
    insert_ignore(conn, sla_configs, rows, ["id"])


def _target(row: Any) -> Target:
    return Target(
        row.id,
        row.acknowledge_minutes,
        row.resolve_minutes,
        bool(row.enabled),
        row.effective_at,
        row.acknowledge_effective_at,
        row.resolve_effective_at,
    )


def targets_in(conn: Connection) -> dict[str, tuple[Target, str | None]]:
    rows = conn.execute(select(sla_configs)).all()
    if len(rows) < len(BANDS):
        seed(conn)
        rows = conn.execute(select(sla_configs)).all()
    return {r.id: (_target(r), r.updated_by) for r in rows if r.id in BY_ID}


def targets(engine: Engine) -> dict[str, tuple[Target, str | None]]:
    with engine.begin() as conn:
        return targets_in(conn)


def list_configs(engine: Engine) -> list[dict[str, Any]]:
    found = targets(engine)
    return [found[b.id][0].as_json(found[b.id][1]) for b in BANDS]


def change(engine: Engine, band: str, changes: dict[str, Any], who: str) -> dict[str, Any]:
    """Apply ``changes`` (any of acknowledge_minutes, resolve_minutes, enabled) to ``band``'s
    target; from now on it judges the alerts. A limit whose value changes judges from now on,
    and both do when the band is enabled again; a limit given its current value keeps its
    start (moving it would spare the clocks that stopped late before now). Raises
    ValueError("field: rule") when resolving would be due before acknowledging."""
    with engine.begin() as conn:
        targets_in(conn)  # seeded
        # a write that changes nothing: the row is this transaction's until it ends (PostgreSQL's
        # row lock, SQLite's write lock), so two changes of one band never mix their fields
        conn.execute(update(sla_configs).where(sla_configs.c.id == band).values(id=sla_configs.c.id))
        current = targets_in(conn)[band][0]
        ack = changes.get("acknowledge_minutes", current.acknowledge_minutes)
        resolve = changes.get("resolve_minutes", current.resolve_minutes)
        if resolve < ack:
            field = "resolve_minutes" if "resolve_minutes" in changes else "acknowledge_minutes"
            raise ValueError(f"{field}: resolve_minutes ({resolve}) must be at least acknowledge_minutes ({ack})")
        now = time.time()
        starts = {}
        enabling = changes.get("enabled") is True and not current.enabled
        for kind in ("acknowledge", "resolve"):
            if enabling or changes.get(f"{kind}_minutes", current.minutes(kind)) != current.minutes(kind):
                starts[f"{kind}_effective_at"] = now
        conn.execute(
            update(sla_configs)
            .where(sla_configs.c.id == band)
            .values(**changes, **starts, effective_at=now, updated_by=who or None)
        )
        row = conn.execute(select(sla_configs).where(sla_configs.c.id == band)).one()
    return _target(row).as_json(row.updated_by)


@dataclass
class EventQuery:
    kind: str | None = None
    band: str | None = None
    state: str | None = None  # running | ended
    alert_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None


def target_keys(text: str | None) -> tuple[str, ...]:
    """The notice target keys of a stored JSON list (``notify_targets``, ``notify_done``: see
    :mod:`outbox`); none for NULL or anything else."""
    try:
        found = orjson.loads(text or "[]")
    except orjson.JSONDecodeError:
        return ()
    return tuple(k for k in found if isinstance(k, str)) if isinstance(found, list) else ()


def event_json(row: Any, now: float) -> dict[str, Any]:
    end = row.ended_at if row.ended_at is not None else now
    return {
        "id": row.id,
        "alert_id": row.alert_id,
        "kind": row.kind,
        "band": row.band,
        "severity": row.severity,
        "limit_minutes": row.limit_minutes,
        "started_at": iso(row.started_at),
        "due_at": iso(row.due_at),
        "breached_at": iso(row.breached_at),
        "running": row.ended_at is None,
        "ended_at": iso(row.ended_at) if row.ended_at is not None else None,
        "end_reason": row.end_reason,
        "elapsed_s": round(max(0.0, end - row.started_at), 3),
        "over_s": round(max(0.0, end - row.breached_at), 3),
        "notify": {
            "state": row.notify_state or "waiting",
            "attempts": row.notify_attempts,
            "sent_at": iso(row.notified_at) if row.notified_at is not None else None,
            "error": row.notify_error,
            # fixed at its first attempt (null before); those of them that accepted it
            "targets": list(target_keys(row.notify_targets)) if row.notify_targets is not None else None,
            "done": list(target_keys(row.notify_done)),
        },
    }


def list_events(engine: Engine, q: EventQuery) -> tuple[list[dict[str, Any]], str | None]:
    """Breaches, the latest first (by breached_at), and the cursor of the next page."""
    c = sla_events.c
    cond = []
    if q.kind:
        cond.append(c.kind == q.kind)
    if q.band:
        cond.append(c.band == q.band)
    if q.state == "running":
        cond.append(c.ended_at.is_(None))
    elif q.state == "ended":
        cond.append(c.ended_at.is_not(None))
    if q.alert_id:
        cond.append(c.alert_id == q.alert_id)
    if q.since is not None:
        cond.append(c.breached_at >= q.since)
    if q.until is not None:
        cond.append(c.breached_at < q.until)
    if q.cursor is not None:
        at, last = q.cursor
        cond.append(or_(c.breached_at < at, and_(c.breached_at == at, c.id < last)))
    stmt = select(sla_events).where(and_(true(), *cond)).order_by(c.breached_at.desc(), c.id.desc()).limit(q.limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    now = time.time()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1].breached_at, rows[-1].id) if more and rows else None
    return [event_json(r, now) for r in rows], nxt
