"""A SAML sign-on is bound to the browser that started it (no login CSRF): the start sets the
``aw_sso`` cookie, and the assertion consumer refuses a response posted by a browser without
it, or with the cookie of another sign-on, even when the response itself is genuine."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator

import pytest
from lxml import etree

from agentwatch.api.auth import COOKIE
from tests.sso.helpers import (
    BINDING_COOKIE,
    PASSWORD,
    SAML_PATHS,
    SamlBrowser,
    audit,
    binding_cookie,
    saml_settings,
    sso_server,
)
from tests.sso.saml_idp import SamlIdp, make_keypair
from tests.support.server import RunningServer

TTL = 300  # sso.request_ttl_s of this server (not the default), which the cookie must follow


@pytest.fixture(scope="module")
def idp() -> SamlIdp:
    return SamlIdp(*make_keypair())


@pytest.fixture(scope="module")
def server(idp: SamlIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    sso = saml_settings(idp.cert, request_ttl_s=TTL)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        s.aw.auth.users.create("mallory@example.com", PASSWORD, "viewer")
        yield s


def saml_failures(s: RunningServer) -> list[dict]:
    return [e for e in audit(s, "auth.login.failure") if e["details"].get("method") == "saml"]


def test_the_start_sets_a_cross_site_cookie_limited_to_the_saml_paths(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post(SAML_PATHS + "/login")
        second = c.post(SAML_PATHS + "/login")
    assert r.status_code == 200, r.text
    cookie = binding_cookie(r)
    assert cookie is not None, r.headers
    # the IdP posts to the assertion consumer from its own site: only SameSite=None is sent then,
    # and browsers take SameSite=None only with Secure
    assert cookie["samesite"].lower() == "none"
    assert cookie["secure"] is True and cookie["httponly"] is True
    assert cookie["path"] == SAML_PATHS
    assert cookie["max-age"] == str(TTL)
    assert len(cookie.value) >= 43  # 32 random bytes or more
    assert cookie.value not in r.json()["request_id"] and cookie.value not in r.json()["authorization_url"]
    assert binding_cookie(second).value != cookie.value


def test_a_response_posted_without_the_cookie_is_refused(server: RunningServer, idp: SamlIdp) -> None:
    """The attack: a genuine response for the attacker's own sign-on, posted by a victim's browser."""
    attacker = SamlBrowser(server)
    response = idp.response(attacker.start(), email="mallory@example.com")
    victim = SamlBrowser(server)
    r = victim.post(response)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("InResponseTo: ") and "not started by this browser" in message
    assert f"no {BINDING_COOKIE} cookie" in message
    assert COOKIE not in r.cookies
    reasons = [e["details"]["reason"] for e in saml_failures(server)]
    assert any(f"no {BINDING_COOKIE} cookie" in reason for reason in reasons)
    # the response is spent: the attacker's own browser cannot use it afterwards either
    again = attacker.post(response)
    assert again.status_code == 401 and "already used" in again.text


def test_a_response_with_the_cookie_of_another_sign_on_is_refused(server: RunningServer, idp: SamlIdp) -> None:
    attacker = SamlBrowser(server)
    response = idp.response(attacker.start(), email="mallory@example.com")
    victim = SamlBrowser(server)
    victim.start()  # the victim's own sign-on, under way: its cookie is not the attacker's
    victims_cookie = victim.cookie
    r = victim.post(response)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("InResponseTo: ") and f"the {BINDING_COOKIE} cookie belongs to another sign-on" in message
    assert COOKIE not in r.cookies
    failures = saml_failures(server)
    assert any("belongs to another sign-on" in e["details"]["reason"] for e in failures)
    assert victims_cookie not in str(failures) and attacker.cookie not in str(failures)


def test_with_the_right_cookie_it_signs_in_and_the_cookie_is_cleared(server: RunningServer, idp: SamlIdp) -> None:
    browser = SamlBrowser(server)
    response = idp.response(browser.start())
    r = browser.post(response)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == "alice@example.com" and COOKIE in r.cookies
    cleared = binding_cookie(r)
    assert cleared is not None and cleared.value == "" and cleared["max-age"] == "0"
    assert cleared["path"] == SAML_PATHS and cleared["secure"] is True
    assert browser.cookie is None


def test_the_redirect_binding_needs_the_cookie_too(server: RunningServer, idp: SamlIdp) -> None:
    browser = SamlBrowser(server)

    def deflated(request_id: str) -> str:
        xml = etree.tostring(idp.response(request_id))
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return base64.b64encode(packer.compress(xml) + packer.flush()).decode()

    r = SamlBrowser(server).get(deflated(browser.start()))
    assert r.status_code == 400 and BINDING_COOKIE in r.text, r.text
    assert browser.get(deflated(browser.start())).status_code == 200


def test_the_cookie_is_cleared_when_the_response_is_refused(server: RunningServer, idp: SamlIdp) -> None:
    browser = SamlBrowser(server)
    r = browser.post(idp.response(browser.start(), email="nobody@example.com"))
    assert r.status_code == 403, r.text
    cleared = binding_cookie(r)
    assert cleared is not None and cleared["max-age"] == "0" and cleared["path"] == SAML_PATHS
    assert browser.cookie is None


def test_a_response_is_used_once_even_with_its_cookie(server: RunningServer, idp: SamlIdp) -> None:
    browser = SamlBrowser(server)
    response = idp.response(browser.start())
    kept = browser.cookie  # a copy, sent again after the answer cleared it
    assert browser.post(response).status_code == 200
    browser.cookie = kept
    r = browser.post(response)
    assert r.status_code == 401 and "already used" in r.text


def test_an_oversized_cookie_is_refused_naming_the_rule(server: RunningServer, idp: SamlIdp) -> None:
    browser = SamlBrowser(server)
    response = idp.response(browser.start())
    browser.cookie = "x" * 4000
    r = browser.post(response)
    assert r.status_code == 400, r.text
    assert f"the {BINDING_COOKIE} cookie is longer than" in r.json()["error"]["message"]
