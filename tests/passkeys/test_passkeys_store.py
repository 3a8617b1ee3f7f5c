"""Pending challenges are single use, expire, and are bounded per user and in all (both stores)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, func, select

from agentwatch.soc.passkeys import store
from agentwatch.soc.passkeys.schema import passkey_challenges


def _pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(passkey_challenges)).scalar_one())


def test_a_challenge_is_taken_once(engine: Engine) -> None:
    nonce = os.urandom(32)
    store.put_challenge(engine, nonce, "login", None, 300, 5, 100)
    got = store.take_challenge(engine, nonce)
    assert got is not None and got.purpose == "login" and got.user_id is None
    assert store.take_challenge(engine, nonce) is None


def test_a_users_oldest_challenge_gives_way_to_a_new_one(engine: Engine) -> None:
    nonces = [os.urandom(32) for _ in range(4)]
    for n in nonces:
        store.put_challenge(engine, n, "register", "u1", 300, 3, 100)
    store.put_challenge(engine, os.urandom(32), "register", "u2", 300, 3, 100)
    assert store.take_challenge(engine, nonces[0]) is None
    assert all(store.take_challenge(engine, n) is not None for n in nonces[1:])


def test_the_total_is_bounded_and_expired_ones_make_room(engine: Engine) -> None:
    for _ in range(3):
        store.put_challenge(engine, os.urandom(32), "login", None, 300, 5, 3)
    with pytest.raises(store.TooManyChallenges):
        store.put_challenge(engine, os.urandom(32), "login", None, 300, 5, 3)
    assert _pending(engine) == 3
    with engine.begin() as conn:
        conn.execute(passkey_challenges.update().values(expires_at=0))
    store.put_challenge(engine, os.urandom(32), "login", None, 300, 5, 3)
    assert _pending(engine) == 1
