"""``push.max_subscriptions_per_user`` holds under parallel registrations, on SQLite and
PostgreSQL: many browsers of one user subscribing at the same moment store at most the limit,
and every one past it is answered 409 (never a 5xx)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.push.helpers import SUBS
from tests.support.server import RunningServer, open_settings, run_server

LIMIT = 3
PARALLEL = 24
PUBLIC = "https://93.184.215.14/push/race-"  # a public address, written as one: never contacted


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def subscription(endpoint: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return {"endpoint": endpoint, "keys": {"p256dh": b64(point), "auth": b64(os.urandom(16))}}


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = open_settings(tmp_path_factory.mktemp("data"), module_database_url)
    push = settings.push.model_copy(update={"max_subscriptions_per_user": LIMIT})
    with run_server(settings.model_copy(update={"push": push})) as s:
        yield s


async def register_all(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return list(await asyncio.gather(*(client.post(SUBS, json=b) for b in bodies)))


@pytest.mark.parametrize("round_", range(2))
def test_parallel_registrations_never_store_more_than_the_limit(srv: RunningServer, round_: int) -> None:
    with srv.client() as c:
        for sub in c.get(SUBS).json()["subscriptions"]:
            assert c.delete(f"{SUBS}/{sub['id']}").status_code == 204
    bodies = [subscription(f"{PUBLIC}{round_}-{i}") for i in range(PARALLEL)]
    answers = asyncio.run(register_all(srv.url, bodies))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * LIMIT + [409] * (PARALLEL - LIMIT), [r.text for r in answers if r.status_code != 201]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["error"]["message"] == (
        f"subscriptions: at most {LIMIT} per user (push.max_subscriptions_per_user)"
    )
    with srv.client() as c:
        stored = c.get(SUBS).json()["subscriptions"]
    assert len(stored) == LIMIT
    assert {s["id"] for s in stored} == {r.json()["id"] for r in answers if r.status_code == 201}
