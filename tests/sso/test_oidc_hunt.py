"""Defects found by reviewing OIDC sign-on: an issuer ending in '/', the JWKS (fetched on every
sign-in when it held no usable key, never dropping a withdrawn key, fetched once per sign-in
arriving together), one address filling the pending sign-ons, e-mails that fold into another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete

from agentwatch.soc.sso.schema import sso_requests
from tests.sso.fake_idp import FakeIdp, fake_idp
from tests.sso.helpers import PASSWORD, oidc_settings, sign_in, sso_server
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    sso = oidc_settings(idp, issuer=idp.url + "/", jwks_refetch_s=3600, max_pending_per_address=3)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        yield s


@pytest.fixture(autouse=True)
def fresh(idp: FakeIdp) -> None:
    idp.reset()
    # this provider's issuer ends with '/' (as Auth0's does): metadata and tokens name it so
    idp.metadata_overrides = {"issuer": idp.url + "/"}
    idp.token = {"claims": {"iss": idp.url + "/"}}


def test_an_issuer_ending_in_a_slash_is_compared_exactly(server: RunningServer, idp: FakeIdp) -> None:
    assert server.aw.settings.sso.issuer == idp.url + "/"
    r = sign_in(server)
    assert r.status_code == 200, r.text
    idp.token = {"claims": {"iss": idp.url}}  # the same issuer without its '/' is another issuer
    r = sign_in(server)
    assert r.status_code == 401 and "iss" in r.json()["error"]["message"]


def test_a_jwks_without_a_usable_key_is_not_fetched_again_on_every_sign_in(
    idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    idp.reset()
    idp.published = []  # a provider mid-rotation, or one whose keys have no kid
    sso = oidc_settings(idp, jwks_refetch_s=3600)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        for _ in range(3):
            r = sign_in(s)
            assert r.status_code == 401 and "unknown kid" in r.json()["error"]["message"]
    assert idp.calls.count("jwks") == 1


def test_one_address_cannot_fill_the_pending_sign_ons(server: RunningServer) -> None:
    try:
        with server.client() as c:
            codes = [c.post("/api/v1/auth/oidc/login").status_code for _ in range(3)]
            r = c.post("/api/v1/auth/oidc/login")
        assert codes == [200, 200, 200]
        assert r.status_code == 429 and "retry-after" in r.headers
        assert "sso.max_pending_per_address" in r.json()["error"]["message"]
    finally:
        with server.aw.engine.begin() as conn:
            conn.execute(delete(sso_requests))


def test_an_email_whose_case_folding_turns_into_ascii_names_no_account(server: RunningServer, idp: FakeIdp) -> None:
    server.aw.auth.users.create("kate@example.com", PASSWORD, "analyst")
    # 'K' here is U+212A KELVIN SIGN, another address at the provider, which lower() folds to 'k'
    idp.identity = {"sub": "sub-kelvin", "email": "\u212aate@example.com", "email_verified": True}
    r = sign_in(server)
    assert r.status_code == 403 and "email" in r.json()["error"]["message"], r.text
    # nor may white space around it (a no-break space is stripped too) make it another account's
    idp.identity = {"sub": "sub-nbsp", "email": "kate@example.com\u00a0", "email_verified": True}
    r = sign_in(server)
    assert r.status_code == 403 and "email" in r.json()["error"]["message"], r.text


def test_a_key_the_provider_no_longer_publishes_is_dropped_once_the_cache_expires(
    idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    idp.reset()
    sso = oidc_settings(idp, metadata_ttl_s=0.5, jwks_refetch_s=3600)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        if s.aw.auth.users.by_email("alice@example.com") is None:  # the module's database may hold her
            s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        assert sign_in(s).status_code == 200
        idp.published = ["ec-1"]  # rsa-1 withdrawn (say, leaked): tokens signed with it must stop working
        time.sleep(0.6)
        r = sign_in(s)
    assert r.status_code == 401 and "unknown kid" in r.json()["error"]["message"], r.text


def test_sign_ins_arriving_together_fetch_the_keys_once(
    idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    idp.reset()
    idp.jwks_delay_s = 0.5
    sso = oidc_settings(idp, jwks_refetch_s=3600)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        if s.aw.auth.users.by_email("alice@example.com") is None:
            s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        with ThreadPoolExecutor(4) as pool:
            codes = [r.status_code for r in pool.map(lambda _: sign_in(s), range(4))]
    assert codes == [200] * 4
    assert idp.calls.count("jwks") == 1
