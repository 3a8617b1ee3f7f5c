"""A honeytokens server shared by a module (auth off), and helpers to drive it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.config import Settings
from tests.detect.helpers import with_detection
from tests.support.server import RunningServer, run_server

TOKENS = "/api/v1/honeytokens"


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=module_database_url,
        auth={"enabled": False},
        honeytokens={"public_url": "https://canary.example"},
    )
    with run_server(with_detection(base)) as s:
        yield s


def unique() -> str:
    return uuid.uuid4().hex[:10]


def create(c: Any, **body: Any) -> dict[str, Any]:
    r = c.post(TOKENS, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def touches(c: Any, token_id: str) -> list[dict[str, Any]]:
    r = c.get(f"{TOKENS}/{token_id}/events")
    assert r.status_code == 200, r.text
    return r.json()["events"]
