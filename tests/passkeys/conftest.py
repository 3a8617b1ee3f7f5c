"""One server per module with authentication on (both stores), users made on demand, and the
two ceremonies driven by the software authenticator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from agentwatch.config import Settings
from agentwatch.soc.auth.settings import LoginThrottleSettings
from tests.passkeys.authenticator import SoftAuthenticator
from tests.support.server import RunningServer, run_server
from tests.support.services import database_for
from tests.support.windows import wait_out_window_edge

PASSWORD = "correct horse battery staple"
CHALLENGE = "/api/v1/passkeys/challenge"
PASSKEYS = "/api/v1/passkeys"
VERIFY = "/api/v1/passkeys/verify"
PER_ACCOUNT = 3
_serial = itertools.count()


@dataclass
class Site:
    srv: RunningServer
    c: httpx.Client
    admin: dict[str, str]

    def user(self, role: str = "analyst") -> tuple[str, str, dict[str, str]]:
        """A new user signed in with a password: (id, email, headers)."""
        email = f"u{next(_serial)}@example.com"
        uid = self.srv.aw.auth.users.create(email, PASSWORD, role).id
        issued = self.srv.aw.auth.tokens.start_session(uid, "127.0.0.1")  # a session, as a login opens it
        return uid, email, {"Authorization": f"Bearer {issued.access_token}"}

    def authenticator(self) -> SoftAuthenticator:
        return SoftAuthenticator(origin=self.srv.url)

    def begin(self, purpose: str, headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
        r = self.c.post(CHALLENGE, json={"purpose": purpose, **extra}, headers=headers or {})
        assert r.status_code == 200, r.text
        return r.json()

    def register(self, headers: dict[str, str], auth: SoftAuthenticator, **knobs: Any) -> httpx.Response:
        options = self.begin("register", headers)
        return self.c.post(
            PASSKEYS, json={"name": "laptop", "credential": auth.create(options, **knobs)}, headers=headers
        )

    def enrolled(self, role: str = "analyst") -> tuple[str, str, dict[str, str], SoftAuthenticator]:
        """A user with one registered passkey: (id, email, headers, authenticator)."""
        uid, email, headers = self.user(role)
        auth = self.authenticator()
        r = self.register(headers, auth)
        assert r.status_code == 201, r.text
        return uid, email, headers, auth

    def login(self, auth: SoftAuthenticator, email: str | None = None, **knobs: Any) -> httpx.Response:
        options = self.begin("login", **({"email": email} if email else {}))
        return self.c.post(VERIFY, json={"credential": auth.get(options, **knobs)})

    def audit(self, action: str) -> list[dict[str, Any]]:
        return self.srv.aw.audit.query(action=action, limit=1000)


@pytest.fixture(autouse=True)
def _clear_of_a_login_window_edge() -> None:
    """Failed attempts are counted in fixed windows: keep a test's attempts in one."""
    wait_out_window_edge(LoginThrottleSettings().window_s, margin=10)


@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def package_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per store for the whole folder (its tests make their own users)."""
    yield from database_for(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="package")
def site(package_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    cfg = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=package_database_url,
        auth={
            "enabled": True,
            "open_ingest_on_loopback": False,
            "login": {"per_account": PER_ACCOUNT, "per_address": 10_000},
        },
        detection={"atr_bundled": False, "pack": False},
    )
    with run_server(cfg) as srv, srv.client() as c:
        srv.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        yield Site(srv, c, {"Authorization": f"Bearer {token['access_token']}"})
