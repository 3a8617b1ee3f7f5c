"""Stored rotations: create, list, read, replace, delete (at most :data:`MAX_ROTATIONS`)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.soc.oncall.schema import oncall_rotations
from agentwatch.soc.oncall.spec import spec_json
from agentwatch.store.keyset import encode_cursor

MAX_ROTATIONS = 1_000


class NameTaken(Exception):
    """Another rotation has this name."""


class TooMany(Exception):
    """The store holds :data:`MAX_ROTATIONS` rotations already."""


def _json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        **spec_json(orjson.loads(row.spec)),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _spec(row: Any) -> dict[str, Any]:
    return orjson.loads(row.spec)


def create(engine: Engine, name: str, spec: dict[str, Any], who: str) -> dict[str, Any]:
    now = time.time()
    row = {
        "id": str(uuid.uuid4()),
        "name": name,
        "spec": orjson.dumps(spec).decode(),
        "created_by": who,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with engine.begin() as conn:
            if int(conn.execute(select(func.count()).select_from(oncall_rotations)).scalar_one()) >= MAX_ROTATIONS:
                raise TooMany
            conn.execute(oncall_rotations.insert().values(**row))
    except IntegrityError:
        raise NameTaken from None
    return get(engine, row["id"]) or {}


def replace(engine: Engine, rotation_id: str, name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Replace the rotation's name and schedule; None when it does not exist."""
    try:
        with engine.begin() as conn:
            done = conn.execute(
                update(oncall_rotations)
                .where(oncall_rotations.c.id == rotation_id)
                .values(name=name, spec=orjson.dumps(spec).decode(), updated_at=time.time())
            )
    except IntegrityError:
        raise NameTaken from None
    return get(engine, rotation_id) if done.rowcount else None


def remove(engine: Engine, rotation_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(oncall_rotations).where(oncall_rotations.c.id == rotation_id)).rowcount > 0


def get(engine: Engine, rotation_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(oncall_rotations).where(oncall_rotations.c.id == rotation_id)).first()
    return None if row is None else _json(row)


def page(engine: Engine, limit: int, cursor: tuple[float, str] | None) -> tuple[list[dict[str, Any]], str | None]:
    """Rotations, oldest first, and the cursor of the next page."""
    c = oncall_rotations.c
    stmt = select(oncall_rotations)
    if cursor is not None:
        at, last = cursor
        stmt = stmt.where(or_(c.created_at > at, and_(c.created_at == at, c.id > last)))
    stmt = stmt.order_by(c.created_at, c.id).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [_json(r) for r in rows], nxt


def schedules(engine: Engine, ref: str | None) -> list[tuple[str, str, dict[str, Any]]] | None:
    """(id, name, stored spec) of every rotation, or of the one whose id or name is ``ref``
    (None when there is none such)."""
    c = oncall_rotations.c
    stmt = select(c.id, c.name, c.spec).order_by(c.created_at, c.id)
    if ref is not None:
        stmt = stmt.where(or_(c.id == ref, c.name == ref))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if ref is not None and not rows:
        return None
    return [(r.id, r.name, _spec(r)) for r in rows]
