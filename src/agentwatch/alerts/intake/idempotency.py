"""Idempotency keys of the alert submit route: claim a key, finish it with its answer, or let
it go when the request failed.

A key is claimed by inserting its row ``pending`` (the primary key makes one claimant win);
a retry then finds the row: the same body finished is answered from the row, the same body
still pending is told to wait (409), another body is a conflict (409). A claim older than
:data:`LEASE_S` whose request never finished (the server stopped half-way) is taken over by
the next retry: the submit route is deterministic for one body, so running it again repeats
the same events and the same alert instead of adding new ones. Rows older than
:data:`KEEP_S` are deleted as new keys come in, so the table stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.alerts.intake.schema import alert_submit_keys as keys

LEASE_S = 120.0  # a pending claim older than this is taken to have died with its request
KEEP_S = 24 * 3600.0  # how long a key is remembered


@dataclass
class Claim:
    """``outcome``: new (go ahead), done (``status``/``answer`` replayed), busy, mismatch."""

    outcome: str
    status: int = 0
    answer: dict[str, Any] | None = None


def claim(engine: Engine, principal: str, key: str, body_hash: str, now: float) -> Claim:
    with engine.begin() as conn:
        conn.execute(delete(keys).where(keys.c.created_at < now - KEEP_S))
    try:
        with engine.begin() as conn:
            conn.execute(
                keys.insert().values(
                    principal=principal, key=key, body_hash=body_hash, state="pending", created_at=now, updated_at=now
                )
            )
        return Claim("new")
    except IntegrityError:
        pass
    where = and_(keys.c.principal == principal, keys.c.key == key)
    with engine.begin() as conn:
        row = conn.execute(select(keys).where(where)).first()
        if row is None:  # finished and aged out just now: the caller may retry at once
            return Claim("busy")
        if row.body_hash != body_hash:
            return Claim("mismatch")
        if row.state == "done":
            return Claim("done", int(row.status or 200), orjson.loads(row.answer or "{}"))
        if row.updated_at >= now - LEASE_S:
            return Claim("busy")
        taken = conn.execute(
            update(keys).where(and_(where, keys.c.updated_at == row.updated_at)).values(updated_at=now)
        )
        return Claim("new" if taken.rowcount == 1 else "busy")


def finish(engine: Engine, principal: str, key: str, status: int, answer: dict[str, Any], now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(keys)
            .where(and_(keys.c.principal == principal, keys.c.key == key))
            .values(state="done", status=status, answer=orjson.dumps(answer).decode(), updated_at=now)
        )


def release(engine: Engine, principal: str, key: str) -> None:
    """Forget a pending claim whose request failed, so a retry runs it afresh."""
    with engine.begin() as conn:
        conn.execute(
            delete(keys).where(and_(keys.c.principal == principal, keys.c.key == key, keys.c.state == "pending"))
        )
