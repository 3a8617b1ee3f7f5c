"""Password hashing with argon2id (argon2-cffi's RFC 9106 defaults)."""

from __future__ import annotations

import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 accepts any length; the cap keeps a login from being a CPU/memory sink

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(24))


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``.

    With ``stored=None`` (no such account) a throw-away hash is checked instead, so an unknown
    account costs the same time as a known one and cannot be told apart by timing."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def generate_password() -> str:
    """A random password for first-start admins and CLI-created users (about 144 bits)."""
    return secrets.token_urlsafe(18)


def password_problem(password: str) -> str | None:
    """Why ``password`` is not acceptable for a new account, or None."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    return None
