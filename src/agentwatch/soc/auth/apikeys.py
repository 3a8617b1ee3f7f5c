"""API keys: ``aw_<prefix>_<secret>``, shown once, stored as the prefix and a SHA-256 of the secret.

The prefix is public (it identifies the key in lists and logs); the secret is 256 random bits,
so a fast digest suffices and the per-request check stays cheap. A key carries scopes; what
it may actually do is its scopes intersected with its owner's current permissions, so a key
never outgrows the user who made it, even after that user loses a role.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, select, update

from agentwatch.soc.auth_schema import api_keys

KEY_PREFIX = "aw_"
PREFIX_CHARS = 12
MAX_KEY_CHARS = 256


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != PREFIX_CHARS or not secret:
        return None
    return prefix, secret


@dataclass(frozen=True)
class ApiKey:
    id: str
    prefix: str
    name: str
    owner_id: str
    created_by: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    last_used_from: str | None
    revoked_at: float | None
    secret_hash: str = ""

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        m = row._mapping
        return cls(
            m["id"],
            m["prefix"],
            m["name"],
            m["owner_id"],
            m["created_by"],
            tuple(orjson.loads(m["scopes"])),
            m["created_at"],
            m["expires_at"],
            m["last_used_at"],
            m["last_used_from"],
            m["revoked_at"],
            m["secret_hash"],
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": KEY_PREFIX + self.prefix,
            "owner_id": self.owner_id,
            "created_by": self.created_by,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "last_used_from": self.last_used_from,
            "revoked_at": self.revoked_at,
        }


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, *, owner_id: str, created_by: str, name: str, scopes: list[str], expires_at: float | None
    ) -> tuple[ApiKey, str]:
        """The stored key and its plaintext (returned once, never stored)."""
        prefix = secrets.token_hex(PREFIX_CHARS // 2)
        secret = secrets.token_urlsafe(32)
        row = {
            "id": str(uuid.uuid4()),
            "prefix": prefix,
            "secret_hash": _digest(secret),
            "name": name,
            "owner_id": owner_id,
            "created_by": created_by[:128],
            "scopes": orjson.dumps(sorted(set(scopes))).decode(),
            "created_at": time.time(),
            "expires_at": expires_at,
            "last_used_at": None,
            "last_used_from": None,
            "revoked_at": None,
        }
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(**row))
        return self.get(row["id"]), f"{KEY_PREFIX}{prefix}_{secret}"  # type: ignore[return-value]

    def get(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        return ApiKey.from_row(row) if row else None

    def lookup(self, key: str) -> ApiKey | None:
        """The stored key matching ``key`` (revoked and expired ones included), else None."""
        parts = split_key(key)
        if parts is None:
            return None
        prefix, secret = parts
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.prefix == prefix)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
            return None
        return ApiKey.from_row(row)

    def list(self, owner_id: str | None = None) -> list[ApiKey]:
        stmt = select(api_keys).order_by(api_keys.c.created_at)
        if owner_id is not None:
            stmt = stmt.where(api_keys.c.owner_id == owner_id)
        with self.engine.connect() as conn:
            return [ApiKey.from_row(r) for r in conn.execute(stmt)]

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where(and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)))
                .values(revoked_at=time.time())
            )
        return done.rowcount == 1

    def touch(self, key_id: str, client: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(last_used_at=time.time(), last_used_from=client[:64])
            )
