"""Stored push subscriptions: register (or refresh), list an owner's, read, remove, and the
targets of a push with what it got back."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, false, func, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.soc.push.schema import push_subscriptions
from agentwatch.soc.push.spec import SubscriptionIn

t = push_subscriptions
OWNER_LOCK_SPACE = 0x70757368  # "push": advisory locks of one owner's subscriptions


class TooMany(Exception):
    """The owner holds the most subscriptions allowed already."""


def _hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def to_json(row: Any) -> dict[str, Any]:
    """A subscription as the API shows it (its keys stay in the store)."""
    return {
        "id": row.id,
        "endpoint": row.endpoint,
        "device_name": row.device_name,
        "expirationTime": None if row.expires_at is None else int(row.expires_at * 1000),
        "created_at": iso(row.created_at),
        "last_sent_at": None if row.last_sent_at is None else iso(row.last_sent_at),
        "last_status": row.last_status,
    }


def hold_owner(conn: Connection, owner: str) -> None:
    """Be the one writer of ``owner``'s subscriptions until the transaction ends, so the count
    checked against the limit is the count the insert adds to (parallel registrations take
    turns). PostgreSQL: an advisory lock keyed by the owner; SQLite: the database's write lock,
    taken at once by a write that changes nothing."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(OWNER_LOCK_SPACE, func.hashtext(owner))))
    else:
        conn.execute(update(t).where(false()).values(owner=t.c.owner))


def register(engine: Engine, owner: str, sub: SubscriptionIn, limit: int) -> tuple[dict[str, Any], bool]:
    """Store ``sub`` for ``owner``; the same endpoint again replaces its keys and name.
    Returns the subscription and whether it is new."""
    values = {
        "p256dh": sub.keys.p256dh,
        "auth": sub.keys.auth,
        "expires_at": None if sub.expirationTime is None else sub.expirationTime / 1000,
        "device_name": sub.device_name,
    }
    digest = _hash(sub.endpoint)
    mine = and_(t.c.owner == owner, t.c.endpoint_hash == digest)
    created = False
    for _ in range(2):  # a concurrent registration of the same endpoint: then it is an update
        try:
            with engine.begin() as conn:
                hold_owner(conn, owner)
                found = conn.execute(select(t.c.id).where(mine)).scalar()
                if found is not None:
                    conn.execute(update(t).where(t.c.id == found).values(**values))
                else:
                    held = conn.execute(select(func.count()).select_from(t).where(t.c.owner == owner)).scalar_one()
                    if int(held) >= limit:
                        raise TooMany
                    found = str(uuid.uuid4())
                    row = {"id": found, "owner": owner, "endpoint": sub.endpoint, "endpoint_hash": digest}
                    conn.execute(t.insert().values(**row, created_at=time.time(), **values))
                    created = True
        except IntegrityError:
            continue
        return get(engine, found) or {}, created
    raise TooMany  # pragma: no cover - two lost races in a row


def of_owner(engine: Engine, owner: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.owner == owner).order_by(t.c.created_at, t.c.id)).all()
    return [to_json(r) for r in rows]


def owner_of(engine: Engine, sub_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(t.c.owner).where(t.c.id == sub_id)).scalar()


def get(engine: Engine, sub_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == sub_id)).first()
    return None if row is None else to_json(row)


def remove(engine: Engine, sub_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(t).where(t.c.id == sub_id)).rowcount > 0


def targets(engine: Engine, owner: str | None = None) -> list[Any]:
    """Rows to push to (with their keys): ``owner``'s, or everybody's; expired ones are removed."""
    now = time.time()
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.expires_at.is_not(None), t.c.expires_at <= now))
        stmt = select(t).order_by(t.c.owner, t.c.created_at, t.c.id)
        if owner is not None:
            stmt = stmt.where(t.c.owner == owner)
        return list(conn.execute(stmt).all())


def owners(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(t.c.owner).distinct()).all()]


def record(engine: Engine, results: list[tuple[str, int | None, bool]]) -> None:
    """Note each push's answer (id, status, gone); a subscription the service called gone is removed."""
    now = time.time()
    with engine.begin() as conn:
        for sub_id, status, gone in results:
            if gone:
                conn.execute(delete(t).where(t.c.id == sub_id))
            elif status is not None:
                conn.execute(update(t).where(t.c.id == sub_id).values(last_sent_at=now, last_status=status))
