"""Fixtures of the detection-proposal tests: one server per module and store, authentication on,
with real users (an analyst author, two admins who may approve, a viewer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server

PASSWORD = "correct horse battery staple"
MAX_WINDOW_HITS = 3


@dataclass
class Team:
    srv: RunningServer
    client: httpx.Client
    analyst: dict[str, str]  # rules:read + rules:write (the analyst role)
    admin1: dict[str, str]  # admin: rules:approve
    admin2: dict[str, str]
    viewer: dict[str, str]  # rules:read only


def _login(srv: RunningServer, c: httpx.Client, email: str, role: str) -> dict[str, str]:
    srv.aw.auth.users.create(email, PASSWORD, role)
    r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def team(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=module_database_url,
        auth={
            "enabled": True,
            "open_ingest_on_loopback": False,
            "rate_limit": {"user": 100_000, "api_key": 100_000},
        },
        detection={"atr_bundled": False, "pack": False},
        proposals={"max_window_hits": MAX_WINDOW_HITS},
    )
    with run_server(cfg) as srv, srv.client() as c:
        yield Team(
            srv,
            c,
            analyst=_login(srv, c, "analyst@example.com", "analyst"),
            admin1=_login(srv, c, "admin1@example.com", "admin"),
            admin2=_login(srv, c, "admin2@example.com", "admin"),
            viewer=_login(srv, c, "viewer@example.com", "viewer"),
        )
