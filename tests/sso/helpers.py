"""Shared parts of the sign-on tests: a server with authentication and sign-on on, and the
browser's part of an OIDC flow (start, visit the provider, come back with code and state)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from agentwatch.config import Settings
from tests.sso.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeIdp
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
