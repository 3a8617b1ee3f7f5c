"""Fixtures of the access-layer tests: servers with authentication on, users, logins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentwatch.config import Settings
from agentwatch.soc.auth.settings import LoginThrottleSettings
from tests.support.server import RunningServer, run_server
from tests.support.windows import wait_out_window_edge

PASSWORD = "correct horse battery staple"


def auth_settings(tmp_path: Path, database_url: str, **auth: Any) -> Settings:
    """Authentication on, ingest closed, generous limits unless a test narrows them."""
    cfg: dict[str, Any] = {"enabled": True, "open_ingest_on_loopback": False, **auth}
    # The bundled detection rule sets take seconds to compile and play no part here.
    detection = {"atr_bundled": False, "pack": False}
    return Settings(data_dir=tmp_path, database_url=database_url, auth=cfg, detection=detection)


@pytest.fixture(autouse=True)
def _clear_of_a_login_window_edge() -> None:
    """The login throttle counts in fixed windows of ``auth.login.window_s`` (900 s by default):
    a test starting within 10 s of a window's end waits for the next, so its attempts are counted
    in one window."""
    wait_out_window_edge(LoginThrottleSettings().window_s, margin=10)


@pytest.fixture
def auth_server(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    with run_server(auth_settings(tmp_path, database_url)) as srv:
        yield srv


@pytest.fixture
def sqlite_server(tmp_path: Path, sqlite_url: str) -> Iterator[RunningServer]:
    """For tests where the storage backend does not matter (input validation, routing)."""
    with run_server(auth_settings(tmp_path, sqlite_url)) as srv:
        yield srv


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agentwatch.db'}"


def add_user(srv: RunningServer, email: str, role: str, password: str = PASSWORD) -> str:
    return srv.aw.auth.users.create(email, password, role).id


def login(c: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = c.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_headers(srv: RunningServer, c: httpx.Client, email: str, role: str) -> dict[str, str]:
    add_user(srv, email, role)
    return bearer(login(c, email)["access_token"])
