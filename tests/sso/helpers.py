"""Shared parts of the sign-on tests: a server with authentication and sign-on on, and the
browser's part of an OIDC flow (start, visit the provider, come back with code and state) and
of a SAML one (start, post the IdP's response back with the cookie the start set)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import Morsel, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from agentwatch.config import Settings
from tests.sso.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdp
from tests.sso.saml_idp import ACS, IDP_ENTITY, SP_ENTITY, encode
from tests.support.server import RunningServer, run_server

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1/app/sso/callback"


def oidc_settings(idp: FakeIdp, **extra: Any) -> dict[str, Any]:
    return {
        "oidc_enabled": True,
        "allow_private": True,
        "issuer": idp.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
        "jwks_refetch_s": 0,
        **extra,
    }


@contextmanager
def sso_server(
    database_url: str, data_dir: Path, sso: dict[str, Any], per_address: int = 1000
) -> Iterator[RunningServer]:
    cfg = Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": True, "open_ingest_on_loopback": False, "login": {"per_address": per_address}},
        detection={"atr_bundled": False, "pack": False},
        sso=sso,
    )
    with run_server(cfg) as s:
        yield s


def start(c: httpx.Client) -> dict[str, Any]:
    r = c.post("/api/v1/auth/oidc/login")
    assert r.status_code == 200, r.text
    return r.json()


def visit_provider(authorization_url: str) -> dict[str, str]:
    """What the browser brings back from the provider: the callback's query (code, state)."""
    r = httpx.get(authorization_url, follow_redirects=False)
    assert r.status_code == 302, r.text
    location = urlsplit(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return dict(parse_qsl(location.query))


def sign_in(s: RunningServer) -> httpx.Response:
    """A whole OIDC sign-in in a fresh browser (client); the callback's answer."""
    with s.client() as c:
        back = visit_provider(start(c)["authorization_url"])
        return c.get("/api/v1/auth/oidc/callback", params=back)


def audit(s: RunningServer, action: str) -> list[dict[str, Any]]:
    return s.aw.audit.query(action=action, limit=50)


# -- SAML: the browser's part ----------------------------------------------------------------------

BINDING_COOKIE = "aw_sso"
SAML_PATHS = "/api/v1/auth/saml"
ACS_PATH = SAML_PATHS + "/callback"


def saml_settings(idp_cert: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "saml_enabled": True,
        "saml_idp_entity_id": IDP_ENTITY,
        "saml_idp_sso_url": "https://idp.example.test/sso",
        "saml_idp_cert": idp_cert.decode(),
        "saml_sp_entity_id": SP_ENTITY,
        "saml_acs_url": ACS,
        **extra,
    }


def binding_cookie(r: httpx.Response) -> Morsel[str] | None:
    """The ``aw_sso`` cookie an answer sets (or clears), with its attributes, as a browser reads them."""
    for header in r.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if BINDING_COOKIE in jar:
            return jar[BINDING_COOKIE]
    return None


class SamlBrowser:
    """One browser: it starts a SAML sign-on here, keeps the ``aw_sso`` cookie it is given (or
    drops it when told to), and sends it with the IdP's response to the assertion consumer. The
    cookie is sent by hand: it is ``Secure``, which httpx keeps off a plain-http test server."""

    def __init__(self, s: RunningServer) -> None:
        self.s = s
        self.cookie: str | None = None

    def start(self) -> str:
        """The AuthnRequest id of a sign-on started in this browser."""
        with self.s.client() as c:
            r = c.post(SAML_PATHS + "/login")
        assert r.status_code == 200, r.text
        self.keep(r)
        return r.json()["request_id"]

    def keep(self, r: httpx.Response) -> None:
        m = binding_cookie(r)
        if m is not None:
            self.cookie = m.value if m.value and m["max-age"] != "0" else None

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{BINDING_COOKIE}={self.cookie}"} if self.cookie is not None else {}

    def post(self, response: Any) -> httpx.Response:
        """The IdP's response posted to the assertion consumer (HTTP-POST binding)."""
        value = response if isinstance(response, str) else encode(response)
        with self.s.client() as c:
            r = c.post(ACS_PATH, data={"SAMLResponse": value, "RelayState": ""}, headers=self.headers())
        self.keep(r)
        return r

    def get(self, value: str) -> httpx.Response:
        """The IdP's response sent in the query (HTTP-Redirect binding)."""
        with self.s.client() as c:
            r = c.get(ACS_PATH, params={"SAMLResponse": value}, headers=self.headers())
        self.keep(r)
        return r
