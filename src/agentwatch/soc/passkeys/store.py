"""Stored passkeys and pending challenges.

A challenge is kept only as its SHA-256 and is taken (deleted) by the first response that
names it, whatever the outcome, so it is never accepted twice. Pending challenges are
bounded per user (a new one pushes out that user's oldest) and in all (a new one is refused).
Public login challenges are not kept (see ``signed``): only a ``spent`` row per answered one,
until it expires, so it is not accepted twice.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.soc.auth_schema import users
from agentwatch.soc.passkeys.schema import passkey_challenges, passkeys


class TooManyChallenges(Exception):
    """``max_challenges`` ceremonies are in progress already."""


class TooManyPasskeys(Exception):
    """The user has ``max_per_user`` passkeys already."""


class CredentialTaken(Exception):
    """A passkey with this credential id is registered already."""


SPENT = "spent"


def challenge_key(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


@dataclass(frozen=True)
class Challenge:
    purpose: str
    user_id: str | None
    expires_at: float


@dataclass(frozen=True)
class Passkey:
    id: str
    user_id: str
    credential_id: str
    public_key: bytes
    sign_count: int
    name: str
    transports: list[str]
    aaguid: str
    backed_up: bool
    created_at: float
    last_used_at: float | None

    @classmethod
    def from_row(cls, row: Any) -> Passkey:
        return cls(
            row.id,
            row.user_id,
            row.credential_id,
            bytes(row.public_key),
            int(row.sign_count),
            row.name,
            orjson.loads(row.transports),
            row.aaguid,
            bool(row.backed_up),
            row.created_at,
            row.last_used_at,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "credential_id": self.credential_id,
            "transports": self.transports,
            "aaguid": self.aaguid,
            "backed_up": self.backed_up,
            "sign_count": self.sign_count,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
        }


def put_challenge(
    engine: Engine, challenge: bytes, purpose: str, user_id: str | None, ttl_s: float, per_user: int, total: int
) -> None:
    now = time.time()
    c = passkey_challenges.c
    with engine.begin() as conn:
        conn.execute(delete(passkey_challenges).where(c.expires_at <= now))
        if user_id is not None:
            kept = select(c.id).where(c.user_id == user_id).order_by(c.created_at.desc(), c.id).limit(per_user - 1)
            conn.execute(delete(passkey_challenges).where(c.user_id == user_id, c.id.not_in(kept.scalar_subquery())))
        pending = select(func.count()).select_from(passkey_challenges).where(c.purpose != SPENT)
        if int(conn.execute(pending).scalar_one()) >= total:
            raise TooManyChallenges
        conn.execute(
            passkey_challenges.insert().values(
                id=challenge_key(challenge), purpose=purpose, user_id=user_id, created_at=now, expires_at=now + ttl_s
            )
        )


def take_challenge(engine: Engine, challenge: bytes) -> Challenge | None:
    """The pending challenge, removed so no other response can use it (None: unknown or
    already taken). Whether it has expired is for the caller to check."""
    key = challenge_key(challenge)
    c = passkey_challenges.c
    with engine.begin() as conn:
        row = conn.execute(select(passkey_challenges).where(c.id == key, c.purpose != SPENT)).first()
        if row is None or conn.execute(delete(passkey_challenges).where(c.id == key)).rowcount != 1:
            return None
    return Challenge(row.purpose, row.user_id, row.expires_at)


def spend(engine: Engine, challenge: bytes, expires_at: float) -> bool:
    """Record a signed login challenge as answered; False when it was answered before."""
    now = time.time()
    c = passkey_challenges.c
    try:
        with engine.begin() as conn:
            conn.execute(delete(passkey_challenges).where(c.expires_at <= now))
            conn.execute(
                passkey_challenges.insert().values(
                    id=challenge_key(challenge), purpose=SPENT, user_id=None, created_at=now, expires_at=expires_at
                )
            )
    except IntegrityError:
        return False
    return True


def of_user(engine: Engine, user_id: str | None) -> list[Passkey]:
    """The passkeys of ``user_id`` (everyone's when None), oldest first."""
    stmt = select(passkeys).order_by(passkeys.c.created_at, passkeys.c.id)
    if user_id is not None:
        stmt = stmt.where(passkeys.c.user_id == user_id)
    with engine.connect() as conn:
        return [Passkey.from_row(r) for r in conn.execute(stmt.limit(10_000))]


def count_in(conn: Connection, user_id: str) -> int:
    stmt = select(func.count()).select_from(passkeys).where(passkeys.c.user_id == user_id)
    return int(conn.execute(stmt).scalar_one())


def count_of(engine: Engine, user_id: str) -> int:
    with engine.connect() as conn:
        return count_in(conn, user_id)


def get(engine: Engine, passkey_id: str) -> Passkey | None:
    with engine.connect() as conn:
        row = conn.execute(select(passkeys).where(passkeys.c.id == passkey_id)).first()
    return None if row is None else Passkey.from_row(row)


def by_credential(engine: Engine, credential_id: str) -> Passkey | None:
    with engine.connect() as conn:
        row = conn.execute(select(passkeys).where(passkeys.c.credential_id == credential_id)).first()
    return None if row is None else Passkey.from_row(row)


def add(engine: Engine, user_id: str, fields: dict[str, Any], limit: int) -> Passkey:
    row = {"id": str(uuid.uuid4()), "user_id": user_id, "created_at": time.time(), "last_used_at": None, **fields}
    row["transports"] = orjson.dumps(row.get("transports") or []).decode()
    try:
        with engine.begin() as conn:
            if count_in(conn, user_id) >= limit:
                raise TooManyPasskeys
            # a passkey left by an account deleted without this capability loaded (the CLI) holds
            # the credential for no one: it gives way
            orphan = ~select(users.c.id).where(users.c.id == passkeys.c.user_id).exists()
            conn.execute(delete(passkeys).where(passkeys.c.credential_id == row["credential_id"], orphan))
            conn.execute(passkeys.insert().values(**row))
    except IntegrityError:
        raise CredentialTaken from None
    return Passkey.from_row(_Row(row))


class _Row:
    """A row dict read through attributes, as :meth:`Passkey.from_row` reads a result row."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def used(engine: Engine, passkey_id: str, seen: int, new_count: int) -> bool:
    """Record a sign-in: the counter moves from ``seen`` to ``new_count``. False when another
    sign-in changed the counter meanwhile (the two responses carried counters from one state)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(passkeys)
            .where(passkeys.c.id == passkey_id, passkeys.c.sign_count == seen)
            .values(sign_count=new_count, last_used_at=time.time())
        )
    return done.rowcount == 1


def remove(engine: Engine, passkey_id: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(passkeys).where(passkeys.c.id == passkey_id)).rowcount > 0
