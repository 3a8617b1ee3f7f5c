"""Login challenges that keep no state until they are answered.

A public ``login`` challenge is ``"L" || nonce(16) || expires_at(8) || bound(1) || mac(16)``,
the MAC (under the server's identifier key, shared by every node) covering the rest and the
account the challenge is bound to. Asking for one stores nothing, so no number of askers can
fill a table and block real sign-ins, nor push out a named account's own ceremonies. The
first answer that names one records it as spent (until it expires), whatever the outcome, so
it is still accepted at most once; answers are throttled like failed logins, which bounds
those records."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from agentwatch.soc.auth.service import AuthService

TAG = b"L"
NONCE = 16
MAC = 16
SIZE = 1 + NONCE + 8 + 1 + MAC


@dataclass(frozen=True)
class Login:
    head: bytes
    mac: bytes
    expires_at: int
    bound: bool

    def made_for(self, svc: AuthService, user_id: str | None) -> bool:
        """Whether the MAC holds for an unbound challenge (None) or one bound to ``user_id``."""
        return hmac.compare_digest(self.mac, _mac(svc, self.head, user_id))


def _mac(svc: AuthService, head: bytes, user_id: str | None) -> bytes:
    return bytes.fromhex(svc.identifier_hmac("passkey-login:" + head.hex() + ":" + (user_id or "")))[:MAC]


def make(svc: AuthService, user_id: str | None, ttl_s: int, now: float | None = None) -> bytes:
    expires = int((time.time() if now is None else now) + ttl_s)
    head = TAG + secrets.token_bytes(NONCE) + expires.to_bytes(8, "big") + (b"\x01" if user_id else b"\x00")
    return head + _mac(svc, head, user_id)


def parse(challenge: bytes) -> Login | None:
    """The parts of a signed login challenge (None: not of that shape; the MAC is unchecked)."""
    if len(challenge) != SIZE or challenge[:1] != TAG or challenge[-MAC - 1 : -MAC] not in (b"\x00", b"\x01"):
        return None
    head = challenge[:-MAC]
    expires = int.from_bytes(head[1 + NONCE : 1 + NONCE + 8], "big")
    return Login(head, challenge[-MAC:], expires, head[-1:] == b"\x01")
