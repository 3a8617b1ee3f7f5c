"""SAML sign-in through the real server with responses signed by a test IdP key, and the
responses it must refuse: tampered, wrapped, replayed, expired, for another audience, ..."""

from __future__ import annotations

import base64
import copy
import time
import zlib
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from lxml import etree

from agentwatch.api.auth import COOKIE
from tests.sso.helpers import PASSWORD, SamlBrowser, audit, saml_settings, sso_server
from tests.sso.saml_idp import ACS, SP_ENTITY, A, P, SamlIdp, encode, make_keypair
from tests.support.server import RunningServer

CB = "/api/v1/auth/saml/callback"


@pytest.fixture(scope="module")
def idp() -> SamlIdp:
    return SamlIdp(*make_keypair())


@pytest.fixture(scope="module")
def server(idp: SamlIdp, module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    sso = saml_settings(idp.cert, saml_max_response_bytes=64 * 1024)
    with sso_server(module_database_url, tmp_path_factory.mktemp("data"), sso) as s:
        s.aw.auth.users.create("alice@example.com", PASSWORD, "analyst")
        s.aw.auth.users.create("boss@example.com", PASSWORD, "admin")
        yield s


@pytest.fixture
def browser(server: RunningServer) -> SamlBrowser:
    """A browser of its own for each test: it starts sign-ons and posts the IdP's responses."""
    return SamlBrowser(server)


def test_login_answers_the_idp_url_with_a_deflated_authn_request(server: RunningServer) -> None:
    with server.client() as c:
        doc = c.post("/api/v1/auth/saml/login").json()
    url = urlsplit(doc["authorization_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://idp.example.test/sso"
    raw = base64.b64decode(dict(parse_qsl(url.query))["SAMLRequest"])
    req = etree.fromstring(zlib.decompress(raw, -zlib.MAX_WBITS))
    assert req.tag == f"{{{P}}}AuthnRequest" and req.get("ID") == doc["request_id"]
    assert req.get("AssertionConsumerServiceURL") == ACS and req.get("Destination") == "https://idp.example.test/sso"
    assert req.find(f"{{{A}}}Issuer").text == SP_ENTITY


@pytest.mark.parametrize("sign", ["assertion", "response"])
def test_a_signed_response_signs_in_like_a_password_login(
    server: RunningServer, browser: SamlBrowser, idp: SamlIdp, sign: str
) -> None:
    r = browser.post(idp.response(browser.start(), sign=sign))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert {"access_token", "refresh_token", "token_type", "expires_in", "user"} <= set(doc)
    assert doc["user"]["email"] == "alice@example.com" and COOKIE in r.cookies
    with server.client() as c:
        me = c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {doc['access_token']}"})
    assert me.status_code == 200
    assert any(e["details"].get("method") == "saml" for e in audit(server, "auth.login"))


def test_the_redirect_binding_is_accepted_on_get(browser: SamlBrowser, idp: SamlIdp) -> None:
    xml = etree.tostring(idp.response(browser.start()))
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    value = base64.b64encode(packer.compress(xml) + packer.flush()).decode()
    r = browser.get(value)
    assert r.status_code == 200, r.text


def test_a_tampered_assertion_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    resp = idp.response(browser.start())
    resp.find(f".//{{{A}}}NameID").text = "mallory@example.com"
    r = browser.post(resp)
    assert r.status_code == 401 and "signature does not verify" in r.text


def test_a_response_signed_by_another_key_is_refused(browser: SamlBrowser) -> None:
    rogue = SamlIdp(*make_keypair("rogue"))
    r = browser.post(rogue.response(browser.start()))
    assert r.status_code == 401 and "sso.saml_idp_cert" in r.text


def test_an_unsigned_response_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    r = browser.post(idp.response(browser.start(), sign="none"))
    assert r.status_code == 401 and "is signed" in r.text


def test_a_forged_assertion_beside_the_signed_one_is_refused(
    server: RunningServer, browser: SamlBrowser, idp: SamlIdp
) -> None:
    rid = browser.start()
    resp = idp.response(rid)
    resp.insert(2, idp.assertion(rid, email="mallory@example.com"))  # unsigned, placed first
    r = browser.post(resp)
    assert r.status_code == 401
    assert server.aw.auth.users.by_email("mallory@example.com") is None


def test_a_signed_assertion_moved_aside_for_a_forged_one_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    rid = browser.start()
    resp = idp.response(rid)
    signed = resp.find(f"{{{A}}}Assertion")
    resp.remove(signed)
    ext = etree.SubElement(resp, f"{{{P}}}Extensions")
    ext.append(signed)
    forged = idp.assertion(rid, email="mallory@example.com", id=signed.get("ID"))
    forged.append(copy.deepcopy(signed.find("{http://www.w3.org/2000/09/xmldsig#}Signature")))
    resp.insert(2, forged)
    r = browser.post(resp)
    assert r.status_code == 401, r.text


def test_an_assertion_added_to_a_signed_response_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    rid = browser.start()
    resp = idp.response(rid, sign="response")
    resp.append(idp.assertion(rid, email="mallory@example.com"))
    r = browser.post(resp)
    assert r.status_code == 401


def test_a_replayed_assertion_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    value = encode(idp.response(browser.start()))
    assert browser.post(value).status_code == 200
    r = browser.post(value)
    assert r.status_code == 401 and "already used" in r.text


def test_an_unsolicited_response_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    r = browser.post(idp.response("_never-asked"))
    assert r.status_code == 401 and "InResponseTo" in r.text


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"not_after_shift": -3600}, "has expired"),
        ({"not_before_shift": 3600}, "not valid yet"),
        ({"audience": "https://someone-else.example"}, "Audience"),
        ({"recipient": "https://someone-else.example/acs"}, "Recipient"),
        ({"issuer": "https://other-idp.example"}, "Issuer"),
    ],
)
def test_a_bad_assertion_is_refused(browser: SamlBrowser, idp: SamlIdp, kw: dict, message: str) -> None:
    now = time.time()
    if "not_after_shift" in kw:
        kw = {"not_after": now + kw["not_after_shift"], "not_before": now - 7200}
    if "not_before_shift" in kw:
        kw = {"not_before": now + kw["not_before_shift"], "not_after": now + 7200}
    r = browser.post(idp.response(browser.start(), **kw))
    assert r.status_code == 401, r.text
    assert message in r.text


def test_a_wrong_destination_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    r = browser.post(idp.response(browser.start(), sign="response", destination="https://evil.example/acs"))
    assert r.status_code == 401 and "Destination" in r.text


def test_a_dtd_is_refused(browser: SamlBrowser) -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    r = browser.post(base64.b64encode(xxe).decode())
    assert r.status_code == 400 and "DTD" in r.text


def test_input_is_bounded_and_validated(server: RunningServer, browser: SamlBrowser) -> None:
    big = base64.b64encode(b"<a>" + b"x" * 70_000 + b"</a>").decode()
    assert browser.post(big).status_code == 413
    r = browser.post("%%%not base64%%%")
    assert r.status_code == 400 and "SAMLResponse: not valid base64" in r.text
    with server.client() as c:
        assert "SAMLResponse: required" in c.post(CB, data={"RelayState": "x"}).text
        r = c.post(CB, json={"SAMLResponse": "x"})
        assert r.status_code == 415 and "content-type" in r.text


def test_an_unknown_user_is_refused_without_auto_provision(browser: SamlBrowser, idp: SamlIdp) -> None:
    r = browser.post(idp.response(browser.start(), email="zoe@example.com"))
    assert r.status_code == 403 and "sso.auto_provision" in r.text


def test_a_genuine_assertion_for_a_local_admin_is_refused_while_linking_is_off(
    server: RunningServer, browser: SamlBrowser, idp: SamlIdp
) -> None:
    r = browser.post(idp.response(browser.start(), email="boss@example.com"))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["message"].startswith("sso.link_existing_admins: ")
    assert COOKIE not in r.cookies
    failures = [e for e in audit(server, "auth.login.failure") if e["details"].get("method") == "saml"]
    assert any(e["details"]["reason"].startswith("sso.link_existing_admins") for e in failures)


def test_the_oidc_routes_answer_404_naming_the_setting_while_oidc_is_off(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/auth/oidc/login")
    assert r.status_code == 404 and "sso.oidc_enabled" in r.text


def test_a_signature_pointing_at_a_signed_response_moved_aside_is_refused(browser: SamlBrowser, idp: SamlIdp) -> None:
    """The classic wrapping: a forged response for another account carries the genuine signature,
    whose reference points at the genuine response hidden inside it."""
    rid = browser.start()
    genuine = idp.response(rid, sign="response")
    signature = genuine.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    genuine.remove(signature)
    forged = idp.response(rid, sign="none", email="boss@example.com")
    forged.append(signature)
    etree.SubElement(forged, f"{{{P}}}Extensions").append(genuine)
    r = browser.post(forged)
    assert r.status_code == 401 and "does not cover" in r.text, r.text
