"""Stored honeytokens and their touches: create, list, read, revoke, record a touch, count;
and the version that tells every node of a deployment its in-memory needle index is stale."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, case, false, func, or_, select, update

from agentwatch.events.model import iso
from agentwatch.soc.honeytokens.schema import honeytoken_events, honeytokens
from agentwatch.store import kv
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.schema import kv as kv_table
from agentwatch.store.snapshot import snapshot

VERSION_KEY = "honeytokens:version"
TOP = 10
T = honeytokens.c
E = honeytoken_events.c


def token_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "style": row.style,
        "description": row.description,
        "location": row.location,
        "username": row.username,
        "hint": row.hint,
        "status": row.status,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "revoked_at": iso(row.revoked_at) if row.revoked_at is not None else None,
        "revoked_by": row.revoked_by,
        "touches": row.touches,
        "last_touched_at": iso(row.last_touched_at) if row.last_touched_at is not None else None,
    }


def event_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "token_id": row.token_id,
        "ts": iso(row.ts),
        "source": row.source,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "location": row.location,
        "client": row.client,
        "user_agent": row.user_agent,
        "session_id": row.session_id,
        "agent": row.agent,
        "host": row.host,
        "alert_id": row.alert_id,
    }


def bump_version(conn: Connection) -> None:
    kv.put_in(conn, VERSION_KEY, uuid.uuid4().hex)


def version(conn: Connection) -> str | None:
    value = conn.execute(select(kv_table.c.value).where(kv_table.c.key == VERSION_KEY)).scalar_one_or_none()
    return None if value is None else str(orjson.loads(value))


def hold_writes(conn: Connection) -> None:
    """Be the one creator of tokens until the transaction ends, so the count checked against
    ``honeytokens.max_tokens`` is the count written onto (see ``intel.store.hold_writes``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(0x686F6E79, 0)))  # "hony"
    else:
        conn.execute(update(honeytokens).where(false()).values(touches=T.touches))


def create(engine: Engine, row: dict[str, Any], max_total: int) -> dict[str, Any] | None:
    """Store a new token (``row`` holds every column but the bookkeeping ones); its JSON, or
    None when the store already holds ``max_total`` tokens (nothing written)."""
    full = {
        **row,
        "id": str(uuid.uuid4()),
        "status": "active",
        "created_at": time.time(),
        "touches": 0,
        "revoked_at": None,
        "revoked_by": None,
        "last_touched_at": None,
    }
    with engine.begin() as conn:
        hold_writes(conn)
        if int(conn.execute(select(func.count()).select_from(honeytokens)).scalar_one()) >= max_total:
            return None
        conn.execute(honeytokens.insert().values(**full))
        bump_version(conn)
        stored = conn.execute(select(honeytokens).where(T.id == full["id"])).one()
    return token_json(stored)


@dataclass
class Page:
    limit: int = 100
    cursor: tuple[float, str] | None = None


def _paged(
    stmt: Any, total_stmt: Any, engine: Engine, page: Page, at: Any, row_id: Any
) -> tuple[list[Any], int, str | None]:
    if page.cursor is not None:
        when, last = page.cursor
        stmt = stmt.where(or_(at < when, and_(at == when, row_id < last)))
    stmt = stmt.order_by(at.desc(), row_id.desc()).limit(page.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = int(conn.execute(total_stmt).scalar_one())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    last_row = rows[-1] if rows else None
    nxt = None
    if more and last_row is not None:
        nxt = encode_cursor(getattr(last_row, at.key), last_row.id)
    return rows, total, nxt


def search(
    engine: Engine, page: Page, kind: str | None = None, status: str | None = None, q: str | None = None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """(tokens newest first, total matching, next cursor when more remain)."""
    cond = []
    if kind:
        cond.append(T.kind == kind)
    if status:
        cond.append(T.status == status)
    if q:
        cond.append(func.lower(T.name).contains(q.lower(), autoescape=True))
    where = and_(*cond) if cond else None
    stmt = select(honeytokens) if where is None else select(honeytokens).where(where)
    total = select(func.count()).select_from(honeytokens)
    total = total if where is None else total.where(where)
    rows, n, nxt = _paged(stmt, total, engine, page, T.created_at, T.id)
    return [token_json(r) for r in rows], n, nxt


def get(engine: Engine, token_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(honeytokens).where(T.id == token_id)).first()
    return None if row is None else token_json(row)


def revoke(engine: Engine, token_id: str, by: str) -> str:
    """``revoked``, ``already`` (it was revoked before) or ``missing``."""
    with engine.begin() as conn:
        done = conn.execute(
            update(honeytokens)
            .where(and_(T.id == token_id, T.status == "active"))
            .values(status="revoked", revoked_at=time.time(), revoked_by=by[:256])
        ).rowcount
        if done:
            bump_version(conn)
            return "revoked"
        exists = conn.execute(select(T.id).where(T.id == token_id)).first() is not None
    return "already" if exists else "missing"


def active_needles(conn: Connection) -> list[tuple[str, str, int]]:
    """(token id, needle digest, needle length) of every live token, for the scanner's index."""
    out: list[tuple[str, str, int]] = []
    for token_id, needles in conn.execute(select(T.id, T.needles).where(T.status == "active")):
        out.extend((token_id, d, n) for d, n in orjson.loads(needles))
    return out


def live_track_digests(conn: Connection) -> list[str]:
    """The tracking-id digests of every live url token."""
    cond = and_(T.status == "active", T.kind == "url", T.track_digest.is_not(None))
    return list(conn.execute(select(T.track_digest).where(cond)).scalars())


def by_track_digest(conn: Connection, track_digest: str) -> Any:
    """The live url token whose tracking id has this digest, or None."""
    return conn.execute(
        select(honeytokens).where(and_(T.track_digest == track_digest, T.status == "active", T.kind == "url"))
    ).first()


def names(conn: Connection, token_ids: list[str]) -> dict[str, Any]:
    return {r.id: r for r in conn.execute(select(honeytokens).where(T.id.in_(token_ids)))}


def add_touches(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Store touch rows (each with its ``token_id`` and ``ts``) and count them on their tokens."""
    if not rows:
        return
    conn.execute(honeytoken_events.insert(), [{"id": str(uuid.uuid4()), **r} for r in rows])
    per: dict[str, tuple[int, float]] = {}
    for r in rows:
        n, last = per.get(r["token_id"], (0, float("-inf")))
        per[r["token_id"]] = (n + 1, max(last, r["ts"]))
    for token_id, (n, last) in sorted(per.items()):
        later = case((or_(T.last_touched_at.is_(None), T.last_touched_at < last), last), else_=T.last_touched_at)
        conn.execute(update(honeytokens).where(T.id == token_id).values(touches=T.touches + n, last_touched_at=later))


def events(
    engine: Engine, page: Page, token_id: str | None = None, source: str | None = None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """(touches newest first, total matching, next cursor when more remain)."""
    cond = []
    if token_id:
        cond.append(E.token_id == token_id)
    if source:
        cond.append(E.source == source)
    where = and_(*cond) if cond else None
    stmt = select(honeytoken_events) if where is None else select(honeytoken_events).where(where)
    total = select(func.count()).select_from(honeytoken_events)
    total = total if where is None else total.where(where)
    rows, n, nxt = _paged(stmt, total, engine, page, E.ts, E.id)
    return [event_json(r) for r in rows], n, nxt


def stats(engine: Engine, now: float) -> dict[str, Any]:
    """Counts of tokens (by kind and status) and touches (by source, the last day), the last
    touch and the most touched tokens, read in one snapshot."""
    with snapshot(engine) as conn:
        by = conn.execute(select(T.kind, T.status, func.count()).group_by(T.kind, T.status)).all()
        touched = int(conn.execute(select(func.count()).select_from(honeytokens).where(T.touches > 0)).scalar_one())
        sources = {r[0]: int(r[1]) for r in conn.execute(select(E.source, func.count()).group_by(E.source))}
        day = int(
            conn.execute(select(func.count()).select_from(honeytoken_events).where(E.ts >= now - 86_400)).scalar_one()
        )
        last = conn.execute(select(func.max(E.ts))).scalar_one()
        top = conn.execute(
            select(T.id, T.name, T.kind, T.status, T.touches)
            .where(T.touches > 0)
            .order_by(T.touches.desc(), T.id)
            .limit(TOP)
        ).all()
    by_kind: dict[str, int] = {}
    by_status = {"active": 0, "revoked": 0}
    for kind, status, n in by:
        by_kind[kind] = by_kind.get(kind, 0) + n
        by_status[status] = by_status.get(status, 0) + n
    return {
        "tokens": {"total": sum(by_status.values()), **by_status, "by_kind": by_kind, "touched": touched},
        "events": {
            "total": sum(sources.values()),
            "by_source": {"track": sources.get("track", 0), "pipeline": sources.get("pipeline", 0)},
            "last_24h": day,
        },
        "last_touch_at": iso(last) if last is not None else None,
        "top": [{"id": r.id, "name": r.name, "kind": r.kind, "status": r.status, "touches": r.touches} for r in top],
    }
