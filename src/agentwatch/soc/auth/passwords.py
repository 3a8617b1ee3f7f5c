"""Password hashing with argon2id.

The cost is ``auth.password_hash`` (:class:`PasswordHashSettings`): by default argon2-cffi's
RFC 9106 profile (3 passes over 64 MiB, 4 lanes). A hash keeps the parameters it was made with,
so any stored hash verifies whatever the settings are now; a login whose hash was made with
other parameters is hashed again with the current ones (:meth:`Passwords.needs_rehash`).
"""

from __future__ import annotations

import secrets
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from agentwatch.soc.auth.settings import PasswordHashSettings

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 accepts any length; the cap keeps a login from being a CPU/memory sink


class Passwords:
    """Hashing and checking passwords at one cost."""

    def __init__(self, cost: PasswordHashSettings | None = None) -> None:
        c = cost or PasswordHashSettings()
        self._hasher = PasswordHasher(time_cost=c.time_cost, memory_cost=c.memory_kib, parallelism=c.parallelism)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    @cached_property
    def _dummy(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(24))

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``.

        With ``stored=None`` (no such account) a throw-away hash made at this cost is checked
        instead, so an unknown account costs the same time as a known one and cannot be told
        apart by timing."""
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


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
