"""User accounts: e-mail, argon2 password hash, one role."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.api.errors import Conflict, InvalidRequest
from agentwatch.events.model import CONTROL_RE
from agentwatch.soc.auth.passwords import Passwords, password_problem
from agentwatch.soc.auth_schema import api_keys, sessions, users
from agentwatch.store.schema import metadata

# A table's ``info`` key naming its column of a user's id: its rows go when the user is deleted.
USER_OWNED = "deleted_with_user"

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MAX_EMAIL = 320


def normalize_email(email: str, field: str = "email") -> str:
    value = email.strip().lower()
    if len(value) > MAX_EMAIL:
        raise InvalidRequest(f"{field}: must be at most {MAX_EMAIL} characters")
    if CONTROL_RE.search(value):
        raise InvalidRequest(f"{field}: must not contain control characters")
    if not EMAIL_RE.match(value):
        raise InvalidRequest(f"{field}: must be an e-mail address (name@domain)")
    return value


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str
    disabled: bool
    created_at: float
    last_login_at: float | None
    password_hash: str

    @classmethod
    def from_row(cls, row: Any) -> User:
        m = row._mapping
        return cls(
            m["id"], m["email"], m["role"], bool(m["disabled"]), m["created_at"], m["last_login_at"], m["password_hash"]
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at,
            "last_login_at": self.last_login_at,
        }


class UserStore:
    def __init__(self, engine: Engine, passwords: Passwords | None = None) -> None:
        self.engine = engine
        self.passwords = passwords or Passwords()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(users)).scalar_one()

    def get(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return User.from_row(row) if row else None

    def by_email(self, email: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
        return User.from_row(row) if row else None

    def list(self) -> list[User]:
        with self.engine.connect() as conn:
            return [User.from_row(r) for r in conn.execute(select(users).order_by(users.c.created_at))]

    def first_admin(self) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.role == "admin").order_by(users.c.created_at)).first()
        return User.from_row(row) if row else None

    def create(self, email: str, password: str, role: str) -> User:
        email = normalize_email(email)
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(f"password: {problem}")
        now = time.time()
        row = {
            "id": str(uuid.uuid4()),
            "email": email,
            "password_hash": self.passwords.hash(password),
            "role": role,
            "disabled": False,
            "created_at": now,
            "updated_at": now,
            "last_login_at": None,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(users.insert().values(**row))
        except IntegrityError:
            raise Conflict(f"email: a user {email!r} already exists") from None
        return User(row["id"], email, role, False, now, None, row["password_hash"])

    def logged_in(self, user_id: str, new_hash: str | None = None) -> None:
        values: dict[str, Any] = {"last_login_at": time.time()}
        if new_hash:
            values["password_hash"] = new_hash
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(**values))

    def set_password(self, user_id: str, password: str) -> None:
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(f"new_password: {problem}")
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(password_hash=self.passwords.hash(password), updated_at=time.time())
            )

    def update(self, user_id: str, *, role: str | None = None, disabled: bool | None = None) -> User | None:
        """Change role and/or disabled; refuses to leave no enabled admin."""
        values: dict[str, Any] = {"updated_at": time.time()}
        if role is not None:
            values["role"] = role
        if disabled is not None:
            values["disabled"] = disabled
        enabled_admins = users.c.role == "admin", users.c.disabled.is_(False)
        with self.engine.begin() as conn:
            # Lock the enabled admins before counting them: two changes that each leave one admin
            # (two admins disabling each other) must not both pass (on SQLite writers serialize).
            conn.execute(select(users.c.id).where(*enabled_admins).order_by(users.c.id).with_for_update()).all()
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                return None
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            admins = conn.execute(select(func.count()).select_from(users).where(*enabled_admins)).scalar_one()
            if admins == 0:
                raise Conflict("role: this change would leave no enabled admin")
        return self.get(user_id)

    def delete(self, user_id: str) -> Removed | None:
        """Remove the account (None: there is none) and, in the same transaction, end its
        sessions and revoke its API keys; refuses (Conflict) to leave no enabled admin."""
        enabled_admins = users.c.role == "admin", users.c.disabled.is_(False)
        now = time.time()
        with self.engine.begin() as conn:
            # the same lock as update(): two admins deleting each other must not both pass
            conn.execute(select(users.c.id).where(*enabled_admins).order_by(users.c.id).with_for_update()).all()
            if conn.execute(delete(users).where(users.c.id == user_id)).rowcount == 0:
                return None
            admins = conn.execute(select(func.count()).select_from(users).where(*enabled_admins)).scalar_one()
            if admins == 0:
                raise Conflict("user: deleting it would leave no enabled admin")
            ended = conn.execute(
                update(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason="user_deleted")
            ).rowcount
            revoked = conn.execute(
                update(api_keys)
                .where(api_keys.c.owner_id == user_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            for table in metadata.sorted_tables:  # other capabilities' rows that belong to the user
                column = table.info.get(USER_OWNED)
                if column is not None:
                    conn.execute(delete(table).where(table.c[column] == user_id))
        return Removed(sessions_revoked=ended, keys_revoked=revoked)


@dataclass(frozen=True)
class Removed:
    """What deleting a user ended with it."""

    sessions_revoked: int
    keys_revoked: int
