"""Sessions: short-lived access JWTs and rotating refresh tokens grouped in families.

A login opens a session (the family). Each refresh token can be used once: using it marks
it spent and hands out the next one. Presenting a spent token again means it was copied,
so the whole family is revoked, and with it every access token of the session (access
tokens carry the session id, and the session is checked on every request).
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from sqlalchemy import Engine, and_, select, update

from agentwatch.soc.auth_schema import refresh_tokens, sessions, users

ISSUER = "agentwatch"
ALGORITHM = "HS256"
REFRESH_PREFIX = "awr_"
MAX_TOKEN_CHARS = 4096


def _id_text(v: object) -> bool:
    """Ids this server puts in its tokens are short printable ASCII (a signed token with other
    claims was not issued here, and its text could not even be looked up)."""
    return isinstance(v, str) and 0 < len(v) <= 64 and v.isascii() and v.isprintable()


class CredentialError(Exception):
    """A presented credential is malformed, unknown, expired or revoked (answered with 401)."""


class RefreshReuse(CredentialError):
    """A spent refresh token came back: its session has been revoked."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_secret(jwt_secret: str | None, data_dir: Path) -> bytes:
    """The configured key, else one generated once into ``data_dir/jwt.key`` (mode 0600)."""
    if jwt_secret:
        return jwt_secret.encode()
    path = Path(data_dir).expanduser() / "jwt.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it right now
            value = path.read_text().strip()
            if value:
                return value.encode()
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it or set auth.jwt_secret") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class SessionInfo:
    user_id: str
    email: str
    role: str
    session_id: str


@dataclass(frozen=True)
class Issued:
    access_token: str
    access_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    session_id: str
    user_id: str
    issued_at: float

    @property
    def access_expires_in(self) -> int:
        """Seconds the access token lives, counted from its ``iat`` (the claim is whole seconds)."""
        return max(0, int(self.access_expires_at) - int(self.issued_at))

    @property
    def refresh_expires_in(self) -> int:
        """Seconds left on the refresh session at the moment of issue (a rotation keeps its end)."""
        return max(0, math.ceil(self.refresh_expires_at - self.issued_at))


class TokenService:
    def __init__(self, engine: Engine, secret: bytes, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self.engine = engine
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s

    # -- access tokens -------------------------------------------------------------------------

    def issue_access(self, user_id: str, session_id: str, now: float | None = None) -> tuple[str, float]:
        now = now or time.time()
        exp = int(now) + self.access_ttl_s
        claims = {"iss": ISSUER, "sub": user_id, "sid": session_id, "iat": int(now), "exp": exp, "typ": "access"}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), float(exp)

    def decode_access(self, token: str) -> tuple[str, str]:
        """(user id, session id) of a valid access token; raises CredentialError."""
        if len(token) > MAX_TOKEN_CHARS:
            raise CredentialError("token: too long")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "sid", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise CredentialError("token: expired") from None
        except jwt.PyJWTError:
            raise CredentialError("token: invalid") from None
        if claims.get("typ") != "access" or not all(_id_text(claims[k]) for k in ("sub", "sid")):
            raise CredentialError("token: not an access token")
        return claims["sub"], claims["sid"]

    def session_user(self, user_id: str, session_id: str) -> SessionInfo:
        """The live session behind an access token; raises CredentialError when it ended."""
        stmt = (
            select(users.c.id, users.c.email, users.c.role, users.c.disabled)
            .add_columns(sessions.c.revoked_at, sessions.c.expires_at)
            .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
            .where(and_(sessions.c.id == session_id, users.c.id == user_id))
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None or row.disabled:
            raise CredentialError("token: unknown user or session")
        if row.revoked_at is not None or row.expires_at < time.time():
            raise CredentialError("token: session ended")
        return SessionInfo(row.id, row.email, row.role, session_id)

    # -- refresh tokens ------------------------------------------------------------------------

    def _new_refresh(self, conn, session_id: str, expires_at: float, now: float) -> str:  # type: ignore[no-untyped-def]
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        conn.execute(
            refresh_tokens.insert().values(
                id=str(uuid.uuid4()),
                session_id=session_id,
                token_hash=digest(token),
                issued_at=now,
                expires_at=expires_at,
                used_at=None,
            )
        )
        return token

    def start_session(self, user_id: str, client: str) -> Issued:
        now = time.time()
        session_id = str(uuid.uuid4())
        expires_at = now + self.refresh_ttl_s
        with self.engine.begin() as conn:
            conn.execute(
                sessions.insert().values(
                    id=session_id, user_id=user_id, created_at=now, expires_at=expires_at, client=client[:64]
                )
            )
            refresh = self._new_refresh(conn, session_id, expires_at, now)
        access, access_exp = self.issue_access(user_id, session_id, now)
        return Issued(access, access_exp, refresh, expires_at, session_id, user_id, now)

    def rotate(self, refresh_token: str) -> Issued:
        """Spend ``refresh_token`` and hand out the next pair; reuse revokes the family."""
        if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 256:
            raise CredentialError("refresh_token: invalid")
        now = time.time()
        reused_session: str | None = None
        with self.engine.begin() as conn:
            row = conn.execute(
                select(
                    refresh_tokens.c.id,
                    refresh_tokens.c.session_id,
                    refresh_tokens.c.used_at,
                    refresh_tokens.c.expires_at,
                    sessions.c.user_id,
                    sessions.c.revoked_at,
                    users.c.disabled,
                )
                .select_from(
                    refresh_tokens.join(sessions, sessions.c.id == refresh_tokens.c.session_id).join(
                        users, users.c.id == sessions.c.user_id
                    )
                )
                .where(refresh_tokens.c.token_hash == digest(refresh_token))
            ).first()
            if row is None:
                raise CredentialError("refresh_token: invalid")
            if row.revoked_at is not None:
                raise CredentialError("refresh_token: session revoked")
            if row.disabled:
                raise CredentialError("refresh_token: user disabled")
            if row.expires_at < now:
                raise CredentialError("refresh_token: expired")
            spent = conn.execute(
                update(refresh_tokens)
                .where(and_(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None)))
                .values(used_at=now)
            )
            if spent.rowcount != 1:
                reused_session = row.session_id
            else:
                refresh = self._new_refresh(conn, row.session_id, row.expires_at, now)
        if reused_session is not None:
            self.revoke_session(reused_session, "refresh_token_reuse")
            raise RefreshReuse("refresh_token: already used; the session has been revoked")
        access, access_exp = self.issue_access(row.user_id, row.session_id, now)
        return Issued(access, access_exp, refresh, row.expires_at, row.session_id, row.user_id, now)

    def session_of_refresh(self, refresh_token: str) -> tuple[str, str] | None:
        """(session id, user id) of a refresh token (spent or not), for logout."""
        if not refresh_token.startswith(REFRESH_PREFIX) or len(refresh_token) > 256:
            return None
        stmt = (
            select(refresh_tokens.c.session_id, sessions.c.user_id)
            .select_from(refresh_tokens.join(sessions, sessions.c.id == refresh_tokens.c.session_id))
            .where(refresh_tokens.c.token_hash == digest(refresh_token))
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return (row.session_id, row.user_id) if row else None

    def revoke_session(self, session_id: str, reason: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(sessions)
                .where(and_(sessions.c.id == session_id, sessions.c.revoked_at.is_(None)))
                .values(revoked_at=time.time(), revoke_reason=reason[:64])
            )
        return done.rowcount == 1

    def revoke_user_sessions(self, user_id: str, reason: str, keep: str | None = None) -> int:
        """End every session of ``user_id`` (but ``keep``): after a password change or disabling."""
        cond = [sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)]
        if keep is not None:
            cond.append(sessions.c.id != keep)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(sessions).where(and_(*cond)).values(revoked_at=time.time(), revoke_reason=reason)
            )
        return done.rowcount
