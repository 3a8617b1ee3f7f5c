"""``auth.password_hash``: the argon2id cost of new password hashes. A hash keeps the cost it was
made with, so a stored one verifies whatever the settings are now, and a login made with a
hash of another cost stores it again at the current one. Real server, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from agentwatch.config import Settings
from agentwatch.soc.auth.passwords import Passwords
from agentwatch.soc.auth.settings import PasswordHashSettings
from agentwatch.soc.auth_schema import users
from tests.support.server import run_server

PASSWORD = "a long enough password"
CHEAP = PasswordHashSettings(time_cost=1, memory_kib=8192, parallelism=1)
DEARER = PasswordHashSettings(time_cost=2, memory_kib=16384, parallelism=2)


def params(stored: str) -> str:
    """The ``m=..,t=..,p=..`` part of an argon2id hash."""
    return stored.split("$")[3]


def test_hashes_are_made_at_the_configured_cost_and_any_cost_verifies() -> None:
    cheap, dearer = Passwords(CHEAP), Passwords(DEARER)
    assert params(cheap.hash(PASSWORD)) == "m=8192,t=1,p=1"
    made = dearer.hash(PASSWORD)
    assert params(made) == "m=16384,t=2,p=2"
    assert cheap.verify(made, PASSWORD) and not cheap.verify(made, PASSWORD + "x")
    assert cheap.needs_rehash(made) and not dearer.needs_rehash(made)
    # an unknown account is checked against a throw-away hash of the same cost as real ones
    assert not cheap.verify(None, PASSWORD)
    assert params(cheap._dummy) == "m=8192,t=1,p=1"


def test_the_default_is_the_rfc_9106_profile() -> None:
    assert params(Passwords(PasswordHashSettings()).hash(PASSWORD)) == "m=65536,t=3,p=4"


def test_a_login_with_a_hash_of_another_cost_stores_it_again_at_the_current_one(
    tmp_path: Path, database_url: str
) -> None:
    cfg = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={"enabled": True, "password_hash": CHEAP.model_dump()},
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as s, s.client() as c:
        user = s.aw.auth.users.create("cost@example.com", PASSWORD, "viewer")
        with s.aw.engine.begin() as conn:  # as a server of another cost left it
            dearer = Passwords(DEARER).hash(PASSWORD)
            conn.execute(users.update().where(users.c.id == user.id).values(password_hash=dearer))
        r = c.post("/api/v1/auth/login", json={"email": "cost@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
        with s.aw.engine.connect() as conn:
            stored = conn.execute(select(users.c.password_hash).where(users.c.id == user.id)).scalar_one()
    assert params(stored) == "m=8192,t=1,p=1"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("time_cost", 0, "greater than or equal to 1"),
        ("time_cost", 11, "less than or equal to 10"),
        ("memory_kib", 4096, "greater than or equal to 8192"),
        ("parallelism", 17, "less than or equal to 16"),
    ],
)
def test_a_cost_out_of_range_is_refused_naming_the_field(field: str, value: int, rule: str) -> None:
    with pytest.raises(ValueError, match=rf"auth\.password_hash\.{field}[\s\S]*{rule}"):
        Settings(auth={"password_hash": {field: value}})
