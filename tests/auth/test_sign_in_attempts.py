"""Sign-in budgets counted in the store: one budget for every server on it, kept over a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from agentwatch.soc.auth.attempts import MAX_KEY, StoreCounter
from agentwatch.soc.auth_schema import attempts
from tests.auth.conftest import PASSWORD, add_user, auth_settings
from tests.support.server import run_server

WRONG = {"email": "gu@example.com", "password": "wrong password"}


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(attempts.c.key, attempts.c.hits)).all())


async def test_hits_count_up_to_the_limit_and_are_given_back_and_cleared(engine: Engine):
    counter = StoreCounter(engine)
    first = await counter.hit("login:acct:a", 2, 3600)
    assert (first.allowed, first.remaining) == (True, 1)
    second = await counter.hit("login:acct:a", 2, 3600)
    assert (second.allowed, second.remaining) == (True, 0)
    third = await counter.hit("login:acct:a", 2, 3600)
    assert (third.allowed, third.remaining) == (False, 0)
    assert not (await counter.peek("login:acct:a", 2, 3600)).allowed
    assert (await counter.peek("login:acct:b", 2, 3600)).remaining == 2  # budgets apart
    for _ in range(5):  # given back once per hit, never below zero
        await counter.release("login:acct:a", 3600, first.reset_at)
    assert _rows(engine)["login:acct:a"] == 0
    await counter.release("login:acct:a", 3600, first.reset_at - 3600)  # an ended window: nothing
    await counter.hit("login:acct:a", 2, 3600)
    await counter.clear("login:acct:a", 3600)
    assert "login:acct:a" not in _rows(engine)
    assert (await counter.peek("login:acct:a", 2, 3600)).remaining == 2


async def test_a_new_window_starts_from_one_and_ended_windows_are_deleted(engine: Engine):
    counter = StoreCounter(engine)
    start = time.time()
    for _ in range(3):
        await counter.hit("login:addr:old", 10, 1)
    if int(time.time()) == int(start):  # the three hits shared one 1-second window
        assert _rows(engine)["login:addr:old"] == 3
    time.sleep(1.05)
    assert (await counter.hit("login:addr:old", 10, 1)).remaining == 9  # counted again from one
    await counter.hit("login:addr:gone", 10, 1)
    time.sleep(1.05)
    # another process (its own counter) meets the ended windows and deletes them
    await StoreCounter(engine).hit("login:addr:new", 10, 3600)
    assert _rows(engine) == {"login:addr:new": 1}


async def test_a_key_longer_than_the_column_is_kept_as_its_digest(engine: Engine):
    counter = StoreCounter(engine)
    key = "login:addr:" + "x" * 500
    await counter.hit(key, 3, 3600)
    assert (await counter.peek(key, 3, 3600)).remaining == 2
    (stored,) = _rows(engine)
    assert stored.startswith("sha256:") and len(stored) <= MAX_KEY
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)).scalar() == 1


@pytest.mark.parametrize("redis", ["unset", "unreachable"])
def test_two_servers_on_one_store_share_the_budget_and_a_restart_keeps_it(
    tmp_path: Path, database_url: str, redis: str
):
    """Request rate limits fall back to each process's memory when Redis cannot be reached;
    the sign-in budgets are in the store either way."""
    settings = auth_settings(tmp_path, database_url, login={"per_account": 3, "per_address": 100})
    if redis == "unreachable":
        settings = settings.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})  # nothing listens
    with run_server(settings) as one, run_server(settings) as two, one.client() as c1, two.client() as c2:
        add_user(one, "gu@example.com", "viewer")
        # three failures, two through one server and one through the other: the budget is spent
        assert [c.post("/api/v1/auth/login", json=WRONG).status_code for c in (c1, c2, c1)] == [401, 401, 401]
        right = {"email": "gu@example.com", "password": PASSWORD}
        assert c2.post("/api/v1/auth/login", json=right).status_code == 429
        assert c1.post("/api/v1/auth/login", json=right).status_code == 429
    with run_server(settings) as again, again.client() as c:
        assert c.post("/api/v1/auth/login", json=right).status_code == 429
