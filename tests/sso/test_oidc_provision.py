"""Accounts made by sign-on (``sso.auto_provision``): the default role, the groups mapping,
never a role holding admin; and the SSRF guard on the provider's endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sso.fake_idp import FakeIdp, fake_idp
from tests.sso.helpers import audit, oidc_settings, sign_in, sso_server
from tests.support.server import RunningServer

GROUPS = {"soc-analysts": "analyst", "root-ish": "superrole", "key-masters": "keymasters"}


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    sso = oidc_settings(idp, auto_provision=True, group_roles=GROUPS, metadata_ttl_s=0)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        s.aw.auth.roles.create_role("superrole", "holds admin", ["admin"])
        s.aw.auth.roles.create_role("keymasters", "manages users", ["users:admin"])
        yield s


def test_an_unknown_verified_user_gets_an_account_with_the_default_role(server: RunningServer, idp: FakeIdp) -> None:
    idp.reset("dave@example.com")
    r = sign_in(server)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["role"] == "viewer"
    assert server.aw.auth.users.by_email("dave@example.com").role == "viewer"
    entry = next(e for e in audit(server, "auth.login") if e["actor"]["name"] == "dave@example.com")
    assert entry["details"]["method"] == "oidc" and entry["details"]["provisioned"] is True
    again = sign_in(server)
    assert again.status_code == 200 and again.json()["user"]["id"] == r.json()["user"]["id"]


def test_the_first_mapped_group_chooses_the_role(server: RunningServer, idp: FakeIdp) -> None:
    idp.reset("erin@example.com")
    idp.identity["groups"] = ["staff", "soc-analysts"]
    r = sign_in(server)
    assert r.status_code == 200 and r.json()["user"]["role"] == "analyst"


@pytest.mark.parametrize(("group", "holds"), [("root-ish", "admin"), ("key-masters", "users:admin")])
def test_a_mapping_to_a_role_that_holds_admin_is_refused(
    server: RunningServer, idp: FakeIdp, group: str, holds: str
) -> None:
    email = f"{group}@example.com"
    idp.reset(email)
    idp.identity["groups"] = [group]
    r = sign_in(server)
    assert r.status_code == 403, r.text
    assert f"sso.group_roles[{group!r}]" in r.text and repr(holds) in r.text
    assert server.aw.auth.users.by_email(email) is None


def test_an_unverified_email_gets_no_account(server: RunningServer, idp: FakeIdp) -> None:
    idp.reset("frank@example.com")
    idp.identity["email_verified"] = False
    assert sign_in(server).status_code == 403
    assert server.aw.auth.users.by_email("frank@example.com") is None


@pytest.mark.parametrize("endpoint", ["token_endpoint", "authorization_endpoint"])
def test_a_provider_endpoint_on_a_metadata_address_is_refused_by_the_ssrf_guard(
    server: RunningServer, idp: FakeIdp, endpoint: str
) -> None:
    idp.reset()
    idp.metadata_overrides = {"token_endpoint": "http://169.254.169.254/latest/meta-data/"}
    if endpoint == "token_endpoint":
        r = sign_in(server)
        assert r.status_code == 502, r.text
        assert "sso.token_endpoint: refused by the SSRF guard" in r.text and "metadata" in r.text
    else:
        idp.metadata_overrides = {"authorization_endpoint": "file:///etc/passwd"}
        with server.client() as c:
            r = c.post("/api/v1/auth/oidc/login")
        assert r.status_code == 502 and "authorization_endpoint" in r.text


def test_metadata_naming_another_issuer_is_refused(server: RunningServer, idp: FakeIdp) -> None:
    idp.metadata_overrides = {"issuer": "https://evil.example"}
    with server.client() as c:
        r = c.post("/api/v1/auth/oidc/login")
    assert r.status_code == 502 and "sso.issuer" in r.text and "another issuer" in r.text


def test_an_oversized_provider_answer_is_refused(server: RunningServer, idp: FakeIdp) -> None:
    idp.metadata_overrides = {"padding": "x" * 300_000}  # over sso.max_response_bytes (256 KiB)
    with server.client() as c:
        r = c.post("/api/v1/auth/oidc/login")
    assert r.status_code == 502 and "sso.issuer: the answer is larger than 262144 bytes" in r.text
