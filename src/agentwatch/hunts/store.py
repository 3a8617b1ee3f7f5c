"""Stored hunt runs (a bounded history per hunt) and the per-hunt run lease.

The lease is a row of ``hunt_leases``, not a PostgreSQL advisory lock: it works the same on
SQLite, survives no longer than ``expires_at`` when its holder dies mid-run, and needs no
connection held open for the length of a run. Taking it is one conditional UPDATE (the row is
free, expired, or already ours) or, when there is no row yet, one INSERT whose primary key
lets only one node in; on PostgreSQL both are atomic under READ COMMITTED, so two nodes never
run one hunt at the same time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.hunts.schema import hunt_leases, hunt_runs

PRUNE_PAGE = 1_000  # runs past the history deleted per save (a lowered hunts.history catches up)


@dataclass
class Run:
    id: str
    hunt_id: str
    definition_hash: str
    trigger: str
    started_at: float
    finished_at: float = 0.0
    status: str = "ok"
    query_total: int = 0
    scanned: int = 0
    matched: int = 0
    alert_id: str | None = None
    error: str | None = None
    body: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hunt_id": self.hunt_id,
            "definition_hash": self.definition_hash,
            "trigger": self.trigger,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "query_total": self.query_total,
            "scanned": self.scanned,
            "matched": self.matched,
            "alert_id": self.alert_id,
            "error": self.error,
            "body": orjson.dumps(self.body).decode(),
        }


def run_json(row: Any, full: bool = True) -> dict[str, Any]:
    doc = {
        "id": row.id,
        "hunt_id": row.hunt_id,
        "definition_hash": row.definition_hash,
        "trigger": row.trigger,
        "status": row.status,
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration_ms": round((row.finished_at - row.started_at) * 1000, 1),
        "query_total": row.query_total,
        "scanned": row.scanned,
        "matched": row.matched,
        "alert_id": row.alert_id,
        "error": row.error,
    }
    if full:
        doc.update(orjson.loads(row.body))
    return doc


def save(engine: Engine, run: Run, keep: int) -> None:
    """Store ``run`` and delete the hunt's runs older than its newest ``keep``."""
    with engine.begin() as conn:
        conn.execute(insert(hunt_runs).values(**run.row()))
        stale = list(
            conn.execute(
                select(hunt_runs.c.id)
                .where(hunt_runs.c.hunt_id == run.hunt_id)
                .order_by(hunt_runs.c.started_at.desc(), hunt_runs.c.id.desc())
                .offset(keep)
                .limit(PRUNE_PAGE)
            ).scalars()
        )
        if stale:
            conn.execute(delete(hunt_runs).where(hunt_runs.c.id.in_(stale)))


def get_run(engine: Engine, hunt_id: str, run_id: str | None) -> dict[str, Any] | None:
    """A run of the hunt (the newest when ``run_id`` is None)."""
    stmt = select(hunt_runs).where(hunt_runs.c.hunt_id == hunt_id)
    if run_id is not None:
        stmt = stmt.where(hunt_runs.c.id == run_id)
    stmt = stmt.order_by(hunt_runs.c.started_at.desc(), hunt_runs.c.id.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else run_json(row)


def history(engine: Engine, hunt_id: str, limit: int) -> list[dict[str, Any]]:
    """The hunt's runs, newest first, without their matched ids."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(hunt_runs)
            .where(hunt_runs.c.hunt_id == hunt_id)
            .order_by(hunt_runs.c.started_at.desc(), hunt_runs.c.id.desc())
            .limit(limit)
        ).all()
    return [run_json(r, full=False) for r in rows]


def last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each hunt's newest run (summary), for the list answer."""
    newest = (
        select(hunt_runs.c.hunt_id, func.max(hunt_runs.c.started_at).label("at")).group_by(hunt_runs.c.hunt_id)
    ).subquery()
    stmt = select(hunt_runs).join(
        newest, and_(hunt_runs.c.hunt_id == newest.c.hunt_id, hunt_runs.c.started_at == newest.c.at)
    )
    with engine.connect() as conn:
        return {r.hunt_id: run_json(r, full=False) for r in conn.execute(stmt).all()}


def last_scheduled_start(engine: Engine, hunt_id: str) -> float | None:
    """When the hunt's newest scheduled run started, on any node."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.max(hunt_runs.c.started_at)).where(
                hunt_runs.c.hunt_id == hunt_id, hunt_runs.c.trigger == "schedule"
            )
        ).scalar()


def _clock(engine: Engine) -> Any:
    """Now, as the lease's time: the database server's clock on PostgreSQL, this host's on SQLite."""
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", func.clock_timestamp())
    return literal(time.time())


def take_lease(engine: Engine, hunt_id: str, holder: str, ttl_s: float) -> bool:
    """Hold the hunt's run lease until released or ``ttl_s`` from now; False when another
    node holds it."""
    c = hunt_leases.c
    with engine.begin() as conn:
        now = _clock(engine)
        taken = conn.execute(
            update(hunt_leases)
            .where(c.hunt_id == hunt_id, or_(c.expires_at < now, c.holder == holder))
            .values(holder=holder, expires_at=now + ttl_s)
        ).rowcount
    if taken:
        return True
    try:
        with engine.begin() as conn:
            if conn.execute(select(c.hunt_id).where(c.hunt_id == hunt_id)).first() is not None:
                return False  # held by another node, not expired
            conn.execute(
                insert(hunt_leases).from_select(
                    ["hunt_id", "holder", "expires_at"],
                    select(literal(hunt_id), literal(holder), _clock(engine) + ttl_s),
                )
            )
    except IntegrityError:
        return False  # another node inserted it first
    return True


def renew_lease(engine: Engine, hunt_id: str, holder: str, ttl_s: float) -> bool:
    """Push the lease ``holder`` holds ``ttl_s`` from now; False when it is no longer held
    (expired and taken by another node)."""
    c = hunt_leases.c
    with engine.begin() as conn:
        now = _clock(engine)
        return bool(
            conn.execute(
                update(hunt_leases).where(c.hunt_id == hunt_id, c.holder == holder).values(expires_at=now + ttl_s)
            ).rowcount
        )


def release_lease(engine: Engine, hunt_id: str, holder: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(hunt_leases).where(hunt_leases.c.hunt_id == hunt_id, hunt_leases.c.holder == holder))
