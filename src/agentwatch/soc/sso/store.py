"""Started sign-ons (single use, short-lived, bounded in number), used SAML assertion ids, and
which accounts sign-on created."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import IntegrityError

from agentwatch.soc.sso.schema import sso_accounts, sso_assertions, sso_requests


class TooManyPending(Exception):
    """As many sign-ons are pending as ``sso.max_pending`` allows."""


class TooManyFromClient(Exception):
    """As many sign-ons started from this client address are pending as ``sso.max_pending_per_address`` allows."""


@dataclass(frozen=True)
class Pending:
    kind: str
    nonce: str
    verifier: str
    binding: str
    expires_at: float


def key_of(value: str) -> str:
    """The stored key of a state or request id (its SHA-256: the table never holds the value itself)."""
    return hashlib.sha256(value.encode()).hexdigest()


class SsoStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        kind: str,
        value: str,
        ttl_s: float,
        max_pending: int,
        *,
        nonce: str = "",
        verifier: str = "",
        binding: str = "",
        client: str = "",
        max_per_client: int | None = None,
    ) -> None:
        """Keep a started sign-on; ``extra`` holds the client address that started it, so that
        one address cannot take all of ``max_pending`` (and lock everyone else out)."""
        now = time.time()
        c = sso_requests.c
        with self.engine.begin() as conn:
            conn.execute(delete(sso_requests).where(c.expires_at <= now))
            if max_per_client is not None:
                mine = conn.execute(select(func.count()).select_from(sso_requests).where(c.extra == client))
                if mine.scalar_one() >= max_per_client:
                    raise TooManyFromClient
            pending = conn.execute(select(func.count()).select_from(sso_requests)).scalar_one()
            if pending >= max_pending:
                raise TooManyPending
            conn.execute(
                sso_requests.insert().values(
                    key=key_of(value),
                    kind=kind,
                    nonce=nonce,
                    verifier=verifier,
                    binding=binding,
                    extra=client,
                    created_at=now,
                    expires_at=now + ttl_s,
                )
            )

    def take(self, kind: str, value: str) -> Pending | None:
        """The pending sign-on ``value`` names, removed so it cannot be used again; None when
        there is none of this kind, it expired, or another request took it first."""
        key = key_of(value)
        c = sso_requests.c
        with self.engine.begin() as conn:
            row = conn.execute(select(sso_requests).where(c.key == key, c.kind == kind)).first()
            if row is None:
                return None
            if conn.execute(delete(sso_requests).where(c.key == key)).rowcount != 1:
                return None  # taken meanwhile
        if row.expires_at <= time.time():
            return None
        return Pending(row.kind, row.nonce, row.verifier, row.binding, row.expires_at)

    def use_assertion(self, assertion_id: str, expires_at: float) -> bool:
        """Record an assertion id as used; False when it was used before (a replay)."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(sso_assertions).where(sso_assertions.c.expires_at <= now))
                conn.execute(sso_assertions.insert().values(id=assertion_id, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def mark_created(self, user_id: str, method: str) -> None:
        """Record that sign-on (``method``: oidc or saml) created the account ``user_id``."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sso_accounts.insert().values(user_id=user_id, method=method, created_at=time.time()))
        except IntegrityError:
            pass  # recorded already

    def created_by_sign_on(self, user_id: str) -> bool:
        """Whether sign-on created the account ``user_id`` (False: a password account, or one
        made before this was recorded)."""
        with self.engine.connect() as conn:
            found = conn.execute(select(sso_accounts.c.user_id).where(sso_accounts.c.user_id == user_id)).first()
        return found is not None
