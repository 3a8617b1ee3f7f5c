"""The OIDC sign-in end to end against a fake provider, and every way its answer is refused:
state, nonce, audience, issuer, expiry, algorithm, key, e-mail verification, unknown account."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from agentwatch.api.auth import COOKIE
from tests.sso.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdp, _b64, fake_idp
from tests.sso.helpers import (
    PASSWORD,
    REDIRECT_URI,
    audit,
    binding_cookie,
    oidc_settings,
    sign_in,
    sso_server,
    start,
    visit_provider,
)
from tests.support.server import RunningServer


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeIdp]:
    with fake_idp() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(idp: FakeIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), oidc_settings(idp)) as s:
        s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        yield s


@pytest.fixture(autouse=True)
def fresh(idp: FakeIdp) -> None:
    idp.reset()


def test_login_answers_an_authorization_url_with_pkce_state_and_nonce(server: RunningServer, idp: FakeIdp) -> None:
    with server.client() as c:
        doc = start(c)
        assert c.cookies.get("aw_sso")
    url = urlsplit(doc["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == idp.url + "/authorize"
    q = dict(parse_qsl(url.query))
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID and q["redirect_uri"] == REDIRECT_URI
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and q["state"] != q["nonce"]
    assert set(q["scope"].split()) == {"openid", "email", "profile"}
    assert doc["expires_in"] == 600


def test_sign_in_ends_exactly_like_a_password_login(server: RunningServer, idp: FakeIdp) -> None:
    r = sign_in(server)
    assert r.status_code == 200, r.text
    with server.client() as c:
        pw = c.post("/api/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert set(r.json()) == set(pw.json())
    assert r.json()["user"]["email"] == "alice@example.com" and r.json()["user"]["role"] == "analyst"
    assert r.headers["cache-control"] == "no-store"
    assert COOKIE in r.cookies
    token = r.json()["access_token"]
    with server.client() as c:
        me = c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["user"]["email"] == "alice@example.com"
        again = c.post("/api/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
        assert again.status_code == 200
    entry = audit(server, "auth.login")
    methods = [e["details"].get("method") for e in entry]
    assert "oidc" in methods
    sent = idp.token_requests[-1]
    assert sent["grant_type"] == "authorization_code" and sent["code_verifier"]
    assert "client_secret" not in sent  # sent in the Authorization header (client_secret_basic)
    assert CLIENT_SECRET not in str(entry)


def test_the_provider_metadata_is_cached(server: RunningServer, idp: FakeIdp) -> None:
    assert sign_in(server).status_code == 200
    assert sign_in(server).status_code == 200
    assert "discovery" not in idp.calls  # fetched by an earlier sign-in, still cached
    assert "jwks" not in idp.calls


def test_an_es256_id_token_is_accepted(server: RunningServer, idp: FakeIdp) -> None:
    idp.token = {"alg": "ES256"}
    assert sign_in(server).status_code == 200


def test_an_unknown_state_is_refused(server: RunningServer) -> None:
    with server.client() as c:
        back = visit_provider(start(c)["authorization_url"])
        r = c.get("/api/v1/auth/oidc/callback", params={**back, "state": "not-the-state"})
    assert r.status_code == 400 and "state: unknown, expired or already used" in r.text


def test_a_state_is_used_once(server: RunningServer) -> None:
    with server.client() as c:
        back = visit_provider(start(c)["authorization_url"])
        assert c.get("/api/v1/auth/oidc/callback", params=back).status_code == 200
        r = c.get("/api/v1/auth/oidc/callback", params=back)
    assert r.status_code == 400 and "already used" in r.text


def test_a_callback_in_another_browser_is_refused(server: RunningServer) -> None:
    with server.client() as c:
        back = visit_provider(start(c)["authorization_url"])
    with server.client() as other:
        r = other.get("/api/v1/auth/oidc/callback", params=back)
    assert r.status_code == 400 and "aw_sso" in r.text


def test_a_callback_without_state_or_code_names_the_field(server: RunningServer) -> None:
    with server.client() as c:
        assert "state: required" in c.get("/api/v1/auth/oidc/callback").text
        back = visit_provider(start(c)["authorization_url"])
        r = c.get("/api/v1/auth/oidc/callback", params={"state": back["state"]})
    assert r.status_code == 400 and "code: required" in r.text


def test_a_provider_error_is_a_refused_sign_in(server: RunningServer) -> None:
    with server.client() as c:
        back = visit_provider(start(c)["authorization_url"])
        r = c.get("/api/v1/auth/oidc/callback", params={"state": back["state"], "error": "access_denied"})
    assert r.status_code == 401 and "access_denied" in r.text


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ({"claims": {"nonce": "another-nonce"}}, "nonce does not match"),
        ({"claims": {"aud": "someone-else"}}, "aud is not this client"),
        ({"claims": {"iss": "http://127.0.0.1:1/other"}}, "iss is not the configured issuer"),
        ({"claims": {"exp": 1_000_000, "iat": 999_000}}, "expired"),
        ({"claims": {"iat": 4_000_000_000, "exp": 4_000_000_300}}, "issued in the future"),
        ({"claims": {"exp": None}}, "'exp' is missing"),
        ({"alg": "none"}, "'none' is not accepted"),
        ({"alg": "HS256"}, "'HS256' is not accepted"),
        ({"key": "rogue", "kid": "rogue"}, "unknown kid"),
        ({"key": "rogue"}, "signature or a claim is invalid"),
        ({"alg": "RS256", "kid": "ec-1"}, "is not a RS256 key"),
    ],
)
def test_a_bad_id_token_is_refused(server: RunningServer, idp: FakeIdp, token: dict, message: str) -> None:
    idp.token = token
    r = sign_in(server)
    assert r.status_code == 401, r.text
    assert message in r.text
    assert COOKIE not in r.cookies


def test_an_unknown_kid_makes_one_jwks_refetch_and_a_rotated_key_is_found(server: RunningServer, idp: FakeIdp) -> None:
    idp.token = {"key": "rogue", "kid": "rogue"}
    assert sign_in(server).status_code == 401
    assert idp.calls.count("jwks") == 1  # asked once more, not in a loop
    idp.calls.clear()
    idp.published = ["rogue", "rsa-1", "ec-1"]  # the provider rotates in a new key
    assert sign_in(server).status_code == 200
    assert idp.calls.count("jwks") == 1


def test_an_unverified_email_is_refused(server: RunningServer, idp: FakeIdp) -> None:
    idp.identity["email_verified"] = False
    r = sign_in(server)
    assert r.status_code == 403 and "email_verified" in r.text
    idp.identity.pop("email_verified")
    assert sign_in(server).status_code == 403


def test_an_unknown_user_is_refused_without_auto_provision(server: RunningServer, idp: FakeIdp) -> None:
    idp.reset("nobody@example.com")
    r = sign_in(server)
    assert r.status_code == 403 and "sso.auto_provision is off" in r.text
    assert server.aw.auth.users.by_email("nobody@example.com") is None
    failures = audit(server, "auth.login.failure")
    assert any(e["details"].get("method") == "oidc" and e["status"] == 403 for e in failures)


def test_a_disabled_account_is_refused(server: RunningServer, idp: FakeIdp) -> None:
    user = server.aw.auth.users.create("carol@example.com", PASSWORD, "viewer")
    server.aw.auth.users.update(user.id, disabled=True)
    idp.reset("carol@example.com")
    assert sign_in(server).status_code == 403


def test_the_saml_routes_answer_404_naming_the_setting_while_saml_is_off(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/auth/saml/login")
        assert r.status_code == 404 and "sso.saml_enabled" in r.text
        assert c.get("/api/v1/auth/saml/callback").status_code == 404


def test_the_login_body_may_only_be_empty(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/auth/oidc/login", json={"prompt": "none"})
        assert r.status_code == 400 and "prompt" in r.text
        assert c.post("/api/v1/auth/oidc/login", json={}).status_code == 200


def test_challenge_is_the_s256_of_the_verifier_sent(server: RunningServer, idp: FakeIdp) -> None:
    with server.client() as c:
        url = start(c)["authorization_url"]
        q = dict(parse_qsl(urlsplit(url).query))
        assert c.get("/api/v1/auth/oidc/callback", params=visit_provider(url)).status_code == 200
    verifier = idp.token_requests[-1]["code_verifier"]
    assert _b64(hashlib.sha256(verifier.encode()).digest()) == q["code_challenge"]


def test_a_refused_callback_clears_the_binding_cookie_too(server: RunningServer, idp: FakeIdp) -> None:
    idp.token = {"claims": {"nonce": "another-nonce"}}
    with server.client() as c:
        back = visit_provider(start(c)["authorization_url"])
        r = c.get("/api/v1/auth/oidc/callback", params=back)
        assert r.status_code == 401, r.text
        cleared = binding_cookie(r)
        assert cleared is not None and cleared["max-age"] == "0" and cleared["path"] == "/api/v1/auth/oidc"
        assert not c.cookies.get("aw_sso")
