"""Offered actions in the store: offer (bound to a caller, expiring), look up, claim once.

The id handed to the client is ``ca_`` and 32 random bytes (URL-safe base64); only its SHA-256
is stored. An offer is found only by the caller it was made to: to anyone else it does not
exist. Claiming is one conditional ``UPDATE`` (not used yet, not expired), so of two runs of
the same action at once exactly one goes ahead, on any number of nodes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, select, update

from agentwatch.soc.copilot.schema import copilot_actions

ACTION_ID_RE = re.compile(r"ca_[A-Za-z0-9_-]{43}", re.ASCII)
KEEP_EXPIRED_S = 3600.0  # an expired offer is still told as expired (not unknown) this long
MAX_PER_PRINCIPAL = 2_000  # offers kept per caller; the oldest go first
PRINCIPAL_WIDTH = copilot_actions.c.principal.type.length
RESOURCE_WIDTH = copilot_actions.c.resource.type.length


@dataclass(frozen=True)
class Offer:
    kind: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Offered:
    kind: str
    args: dict[str, Any]
    resource: str
    expires_at: float
    used_at: float | None


def digest(action_id: str) -> str:
    return hashlib.sha256(action_id.encode()).hexdigest()


def offer(engine: Engine, principal: str, resource: str, offers: list[Offer], ttl_s: float) -> list[tuple[str, float]]:
    """Store ``offers`` for ``principal``; (the id to hand out, its expiry) of each, in order."""
    if not offers:
        return []
    now = time.time()
    expires = now + ttl_s
    who = principal[:PRINCIPAL_WIDTH]
    out: list[tuple[str, float]] = []
    rows = []
    for o in offers:
        action_id = "ca_" + secrets.token_urlsafe(32)
        out.append((action_id, expires))
        rows.append(
            {
                "digest": digest(action_id),
                "principal": who,
                "kind": o.kind,
                "args": orjson.dumps(o.args).decode(),
                "resource": resource[:RESOURCE_WIDTH],
                "created_at": now,
                "expires_at": expires,
                "used_at": None,
            }
        )
    c = copilot_actions.c
    with engine.begin() as conn:
        conn.execute(delete(copilot_actions).where(c.expires_at < now - KEEP_EXPIRED_S))
        conn.execute(copilot_actions.insert(), rows)
        held = conn.execute(select(func.count()).select_from(copilot_actions).where(c.principal == who)).scalar_one()
        if held > MAX_PER_PRINCIPAL:
            cut = conn.execute(
                select(c.created_at)
                .where(c.principal == who)
                .order_by(c.created_at.desc())
                .offset(MAX_PER_PRINCIPAL)
                .limit(1)
            ).scalar()
            if cut is not None:
                conn.execute(delete(copilot_actions).where(c.principal == who, c.created_at <= cut))
    return out


def find(engine: Engine, action_id: str, principal: str) -> Offered | None:
    """The offer behind ``action_id`` when it was made to ``principal``; None otherwise."""
    with engine.connect() as conn:
        row = conn.execute(select(copilot_actions).where(copilot_actions.c.digest == digest(action_id))).first()
    if row is None or not secrets.compare_digest(row.principal.encode(), principal[:PRINCIPAL_WIDTH].encode()):
        return None
    return Offered(row.kind, orjson.loads(row.args), row.resource, row.expires_at, row.used_at)


def claim(engine: Engine, action_id: str, principal: str) -> bool:
    """Mark the offer used; False when it was used, expired or gone meanwhile."""
    now = time.time()
    c = copilot_actions.c
    with engine.begin() as conn:
        done = conn.execute(
            update(copilot_actions)
            .where(
                and_(
                    c.digest == digest(action_id),
                    c.principal == principal[:PRINCIPAL_WIDTH],
                    c.used_at.is_(None),
                    c.expires_at > now,
                )
            )
            .values(used_at=now)
        )
    return done.rowcount == 1
