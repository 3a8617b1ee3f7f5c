"""Tabletop exercises: a session (title, scenario, participants) and its ordered steps (who
does what, which detection should answer, notes). Sessions are created, read and deleted (with
their steps); steps are appended, each at the next position, at most :data:`MAX_STEPS` per session.

A step is appended under a conditional update of the session's step count (``WHERE steps =
n``): two analysts adding a step at once get positions n+1 and n+2, never the same one.
"""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, false, func, or_, select, update

from agentwatch.events.model import iso
from agentwatch.purple.schema import purple_tabletop_steps as steps_t
from agentwatch.purple.schema import purple_tabletops as sessions_t
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot

MAX_STEPS = 100
MAX_SESSIONS = 10_000
ATTEMPTS = 5


class Full(Exception):
    """A bound was reached (the message names it)."""


def session_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "scenario": row.scenario,
        "participants": orjson.loads(row.participants),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "step_count": row.steps,
    }


def step_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "position": row.position,
        "actor": row.actor,
        "action": row.action,
        "expected_detection": row.expected_detection,
        "notes": row.notes,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
    }


def create(engine: Engine, title: str, scenario: str, participants: list[str], by: str) -> dict[str, Any]:
    now = time.time()
    row = {
        "id": str(uuid.uuid4()),
        "title": title,
        "scenario": scenario,
        "participants": orjson.dumps(participants).decode(),
        "created_by": by[:256],
        "created_at": now,
        "updated_at": now,
        "steps": 0,
    }
    with engine.begin() as conn:
        # the count and the insert in one writer's turn (SQLite's write lock taken before the
        # read, PostgreSQL's an advisory lock), so concurrent creates cannot all pass the count
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("purple:tabletops"))))
        else:
            conn.execute(update(sessions_t).where(false()).values(steps=sessions_t.c.steps))
        if int(conn.execute(select(func.count()).select_from(sessions_t)).scalar_one()) >= MAX_SESSIONS:
            raise Full(f"tabletop: at most {MAX_SESSIONS:,} sessions are kept")
        conn.execute(sessions_t.insert().values(**row))
    return get(engine, row["id"]) or {}


def get(engine: Engine, session_id: str) -> dict[str, Any] | None:
    """A session with its steps in order."""
    with snapshot(engine) as conn:
        row = conn.execute(select(sessions_t).where(sessions_t.c.id == session_id)).first()
        if row is None:
            return None
        found = conn.execute(
            select(steps_t).where(steps_t.c.tabletop_id == session_id).order_by(steps_t.c.position)
        ).all()
    return {**session_json(row), "steps": [step_json(s) for s in found]}


def search(
    engine: Engine, limit: int, cursor: tuple[float, str] | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """Sessions newest first (without their steps: ``step_count`` says how many)."""
    stmt = select(sessions_t)
    if cursor is not None:
        at, last = cursor
        c = sessions_t.c
        stmt = stmt.where(or_(c.created_at < at, and_(c.created_at == at, c.id < last)))
    stmt = stmt.order_by(sessions_t.c.created_at.desc(), sessions_t.c.id.desc()).limit(limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = int(conn.execute(select(func.count()).select_from(sessions_t)).scalar_one())
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [session_json(r) for r in rows], total, nxt


def remove(engine: Engine, session_id: str) -> bool:
    """Delete a session and its steps; False when there is no such session. The session row
    goes first: a step being appended holds that row's lock, so its step is committed (and
    then deleted here) before this goes on, and a step appended after finds no session."""
    with engine.begin() as conn:
        if not conn.execute(delete(sessions_t).where(sessions_t.c.id == session_id)).rowcount:
            return False
        conn.execute(delete(steps_t).where(steps_t.c.tabletop_id == session_id))
    return True


def add_step(engine: Engine, session_id: str, step: dict[str, str], by: str) -> dict[str, Any] | None:
    """Append ``step`` (actor, action, expected_detection, notes); the step as stored, or None
    when the session does not exist. Raises :class:`Full` past :data:`MAX_STEPS`."""
    for _ in range(ATTEMPTS):
        with engine.begin() as conn:
            count = conn.execute(select(sessions_t.c.steps).where(sessions_t.c.id == session_id)).scalar_one_or_none()
            if count is None:
                return None
            if count >= MAX_STEPS:
                raise Full(f"steps: a tabletop session holds at most {MAX_STEPS} steps")
            now = time.time()
            claimed = conn.execute(
                update(sessions_t)
                .where(and_(sessions_t.c.id == session_id, sessions_t.c.steps == count))
                .values(steps=count + 1, updated_at=now)
            )
            if claimed.rowcount != 1:
                continue  # another step took this position first: read the count again
            row = {
                "id": str(uuid.uuid4()),
                "tabletop_id": session_id,
                "position": count + 1,
                "created_by": by[:256],
                "created_at": now,
                "expected_detection": "",
                "notes": "",
                **step,
            }
            conn.execute(steps_t.insert().values(**row))
        # answered from what was written: the session (and this step) may be deleted by now
        return step_json(SimpleNamespace(**row))
    raise Full("steps: too many steps added at once to this session; retry")
