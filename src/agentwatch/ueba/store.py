"""Baselines in the store: merged in batches by the detector's persist (``ueba.sync``), read back at start,
for an entity the memory no longer holds, and by the routes of an API node (whose memory
learns nothing: the workers commit the events)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, func, insert, not_, or_, select

from agentwatch.store.upsert import upsert
from agentwatch.store.writer_turns import turn_of
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.schema import ueba_baselines as t

CHUNK = 500  # ids per IN (...) query


def row_of(b: Baseline) -> dict[str, Any]:
    return {
        "entity_id": b.entity_id,
        "type": b.type,
        "value": b.value,
        "event_count": b.event_count,
        "first_seen": b.first_seen,
        "last_seen": b.last_seen,
        "state": orjson.dumps(b.to_state()).decode(),
        "updated_at": time.time(),
    }


def baseline_of(row: Any, cap: int) -> Baseline:
    m = dict(row._mapping)
    b = Baseline.from_state(m, orjson.loads(m["state"]), cap)
    b.stored = True
    return b


@contextmanager
def locked(engine: Engine, ids: Iterable[str], cap: int) -> Iterator[tuple[Connection, dict[str, Baseline]]]:
    """A transaction holding the stored baselines of these entities (those stored) so that no
    other writer changes or deletes them before it ends: SQLite's write lock (``BEGIN
    IMMEDIATE``), PostgreSQL's row locks (``FOR UPDATE``, taken in id order so concurrent
    writers cannot deadlock). Committed when the block ends without an error."""
    wanted = sorted(set(ids))
    with turn_of(engine), engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        found: dict[str, Baseline] = {}
        for i in range(0, len(wanted), CHUNK):
            stmt = select(t).where(t.c.entity_id.in_(wanted[i : i + CHUNK])).order_by(t.c.entity_id)
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update()
            found.update((r.entity_id, baseline_of(r, cap)) for r in conn.execute(stmt))
        yield conn, found


def put(conn: Connection, updated: Sequence[Baseline], inserted: Sequence[Baseline]) -> None:
    """Write baselines in ``locked``'s transaction: ``updated`` over their rows, ``inserted`` as new
    rows (an IntegrityError when another writer inserted one meanwhile: try again)."""
    if inserted:
        conn.execute(insert(t), [row_of(b) for b in sorted(inserted, key=lambda b: b.entity_id)])
    if updated:
        rows = [row_of(b) for b in sorted(updated, key=lambda b: b.entity_id)]
        keep = ("type", "value", "event_count", "first_seen", "last_seen", "state", "updated_at")
        upsert(conn, t, rows, ["entity_id"], {c: (lambda _t, ex, c=c: ex[c]) for c in keep})


def load(engine: Engine, limit: int, cap: int) -> tuple[list[Baseline], int]:
    """The ``limit`` most recently active baselines, oldest first, and how many are stored."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t)).scalar_one()
        rows = conn.execute(select(t).order_by(t.c.last_seen.desc(), t.c.entity_id).limit(limit)).all()
    return [baseline_of(r, cap) for r in reversed(rows)], int(total)


def fetch(engine: Engine, ids: Iterable[str], cap: int) -> list[Baseline]:
    """The stored baselines of these entities (those stored)."""
    wanted = sorted(ids)
    out: list[Baseline] = []
    with engine.connect() as conn:
        for i in range(0, len(wanted), CHUNK):
            rows = conn.execute(select(t).where(t.c.entity_id.in_(wanted[i : i + CHUNK]))).all()
            out.extend(baseline_of(r, cap) for r in rows)
    return out


def remove(engine: Engine, entity_id: str) -> bool:
    with engine.begin() as conn:
        return (conn.execute(delete(t).where(t.c.entity_id == entity_id)).rowcount or 0) > 0


def delete_idle(
    engine: Engine, cutoff: float, after: tuple[float, str] | None, limit: int, spared: frozenset[str]
) -> tuple[tuple[float, str] | None, list[str]]:
    """One page of the baselines last written before ``cutoff``, oldest write first, after the
    (``updated_at``, ``entity_id``) ``after``: those not ``spared`` are deleted (unless written
    again meanwhile). The key of the page's last row (None: the page was the last) and the ids deleted."""
    stmt = select(t.c.entity_id, t.c.updated_at).where(t.c.updated_at < cutoff)
    if after is not None:
        stmt = stmt.where(or_(t.c.updated_at > after[0], and_(t.c.updated_at == after[0], t.c.entity_id > after[1])))
    with engine.begin() as conn:
        page = conn.execute(stmt.order_by(t.c.updated_at, t.c.entity_id).limit(limit)).all()
        doomed = sorted(r.entity_id for r in page if r.entity_id not in spared)
        gone: list[str] = []
        if doomed:
            cond = and_(t.c.entity_id.in_(doomed), t.c.updated_at < cutoff)
            gone = list(conn.execute(delete(t).where(cond).returning(t.c.entity_id)).scalars())
    last = (page[-1].updated_at, page[-1].entity_id) if len(page) == limit else None
    return last, gone


@dataclass
class BaselineQuery:
    warmup_events: int
    warmup_span_s: float
    entity_type: str | None = None
    status: str | None = None  # active | warming_up
    limit: int = 100
    cursor: tuple[float, str] | None = None  # (last_seen, entity_id) of the last row given


def search(engine: Engine, q: BaselineQuery, cap: int) -> tuple[list[Baseline], int, tuple[float, str] | None]:
    """Baselines, most recently active first; the page, the total and the key of its last row
    when more follow."""
    conds: list[Any] = []
    if q.entity_type is not None:
        conds.append(t.c.type == q.entity_type)
    warmed = and_(t.c.event_count >= q.warmup_events, t.c.last_seen - t.c.first_seen >= q.warmup_span_s)
    if q.status == "active":
        conds.append(warmed)
    elif q.status == "warming_up":
        conds.append(not_(warmed))
    where = and_(True, *conds)
    page_where = where
    if q.cursor is not None:
        last, eid = q.cursor
        page_where = and_(where, or_(t.c.last_seen < last, and_(t.c.last_seen == last, t.c.entity_id > eid)))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
        rows = conn.execute(
            select(t).where(page_where).order_by(t.c.last_seen.desc(), t.c.entity_id).limit(q.limit + 1)
        ).all()
    more = len(rows) > q.limit
    page = [baseline_of(r, cap) for r in rows[: q.limit]]
    nxt = (page[-1].last_seen, page[-1].entity_id) if more and page else None
    return page, int(total), nxt
