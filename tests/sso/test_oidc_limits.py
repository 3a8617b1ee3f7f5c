"""Sign-on failures count against the client's failed-login budget (as password logins do),
and pending sign-ons are bounded in number."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sso.fake_idp import FakeIdp, fake_idp
from tests.sso.helpers import audit, oidc_settings, sign_in, sso_server
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    sso = oidc_settings(idp, auto_provision=True, max_pending=10)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso, per_address=3) as s:
        yield s


def test_failed_sign_ins_use_up_the_clients_budget_and_successes_do_not(server: RunningServer, idp: FakeIdp) -> None:
    assert sign_in(server).status_code == 200  # costs nothing
    assert sign_in(server).status_code == 200
    with server.client() as c:
        for _ in range(3):
            assert c.get("/api/v1/auth/oidc/callback", params={"state": "x", "code": "y"}).status_code == 400
        r = c.get("/api/v1/auth/oidc/callback", params={"state": "x", "code": "y"})
    assert r.status_code == 429 and "retry-after" in r.headers
    assert sign_in(server).status_code == 429  # also a genuine sign-in, as for password logins
    with server.client() as c:
        pw = c.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever-it-is"})
    assert pw.status_code == 429  # one budget for the address, whatever the method
    throttled = audit(server, "auth.login.throttled")
    assert any(e["details"].get("method") == "oidc" for e in throttled)


def test_pending_sign_ins_are_bounded(server: RunningServer) -> None:
    with server.client() as c:
        codes = [c.post("/api/v1/auth/oidc/login").status_code for _ in range(12)]
    assert 503 in codes and codes.count(200) <= 10
    with server.client() as c:
        r = c.post("/api/v1/auth/oidc/login")
    assert r.status_code == 503 and "sso.max_pending" in r.text
