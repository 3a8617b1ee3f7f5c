"""Every route of the application, including ones added later, sits behind the access layer.

The walk reads the live route table: a route outside the explicit public list must answer
401 without a credential, and 403 to a credential holding every permission except the one
the route declares. WebSocket routes must refuse the handshake in both cases.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIWebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from agentwatch.api.security import PUBLIC, iter_api_routes, route_guard
from tests.auth.conftest import auth_settings
from tests.support.server import run_server

# Probes and the endpoints that hand out credentials. Adding a public route means adding it
# here, on purpose.
PUBLIC_ROUTES = {
    "/healthz",
    "/health",
    "/api/v1/health",
    "/api/health",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/oidc/login",  # single sign-on: start, and the provider's way back (soc/sso)
    "/api/v1/auth/oidc/callback",
    "/api/v1/auth/saml/login",
    "/api/v1/auth/saml/callback",
    "/api/v1/honeytokens/track/{token_id}",  # what a tripped canary calls: rate-limited, answers alike
    "/",  # the dashboard: its page and files hold no data (each data call carries the user's token)
    "/ui",
    "/ui/",
    "/ui/{asset:path}",
    "/api/v1/passkeys/challenge",
    "/api/v1/passkeys/verify",
}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def ws_refused(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """The HTTP status and error code a refused WebSocket handshake answers with."""
    with pytest.raises(InvalidStatus) as exc, connect(url, additional_headers=headers, open_timeout=10):
        pass
    response = exc.value.response
    return response.status_code, json.loads(response.body)["error"]["code"]


def test_every_non_public_route_needs_a_credential_and_its_permission(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, rate_limit={"enabled": False})
    with run_server(settings) as srv:
        routes = list(iter_api_routes(srv.server.config.app.routes))
        guarded = [(p, r, route_guard(r)) for p, r in routes]
        public = {p for p, _, g in guarded if g.permission == PUBLIC}
        assert public <= PUBLIC_ROUTES, f"routes made public without being listed: {sorted(public - PUBLIC_ROUTES)}"
        assert {"/api/v1/users/me", "/api/v1/api-keys", "/api/v1/audit", "/ws/events"} <= {p for p, _ in routes}

        auth = srv.aw.auth
        admin = auth.users.create("walker@example.com", "correct horse battery staple", "admin")
        catalogue = set(auth.roles.catalogue())
        lacking: dict[str, str] = {}
        for perm in {g.permission for _, _, g in guarded if g.permission != PUBLIC}:
            scopes = sorted(catalogue - {perm, "admin"})
            _, key = auth.keys.create(owner_id=admin.id, created_by="test", name=perm, scopes=scopes, expires_at=None)
            lacking[perm] = key

        checked = 0
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for path, route, guard in guarded:
                if guard.permission == PUBLIC:
                    continue
                url = concrete(path)
                if isinstance(route, APIWebSocketRoute):
                    ws = srv.ws_url + url
                    assert ws_refused(ws, {}) == (401, "UNAUTHORIZED"), path
                    assert ws_refused(ws, {"X-API-Key": lacking[guard.permission]}) == (403, "FORBIDDEN"), path
                    checked += 1
                    continue
                for method in sorted(route.methods - {"HEAD"}):
                    r = c.request(method, url)
                    assert r.status_code == 401, (method, path, r.status_code, r.text)
                    assert r.json()["error"]["code"] == "UNAUTHORIZED"
                    assert r.headers["www-authenticate"] == "Bearer"
                    # X-Agentwatch-Key too: on gateway routes X-API-Key belongs to the LLM provider
                    key = lacking[guard.permission]
                    r = c.request(method, url, headers={"X-API-Key": key, "X-Agentwatch-Key": key})
                    assert r.status_code == 403, (method, path, r.status_code, r.text)
                    assert guard.permission in r.json()["error"]["message"]
                    checked += 1
        # per route, not per path: one public path may carry two routes (GET and POST of the SAML callback)
        assert checked >= len(routes) - sum(1 for _, _, g in guarded if g.permission == PUBLIC)


def test_the_lacking_credentials_do_work_where_permitted(tmp_path: Path, sqlite_url: str):
    """The 403s above come from the permission check, not from a broken key: the same kind
    of key is let through where it holds the permission."""
    settings = auth_settings(tmp_path, sqlite_url, rate_limit={"enabled": False})
    with run_server(settings) as srv:
        auth = srv.aw.auth
        admin = auth.users.create("walker@example.com", "correct horse battery staple", "admin")
        _, key = auth.keys.create(
            owner_id=admin.id, created_by="test", name="r", scopes=["events:read", "account"], expires_at=None
        )
        with httpx.Client(base_url=srv.url, timeout=30, headers={"X-API-Key": key}) as c:
            assert c.get("/api/events").status_code == 200
            assert c.get("/api/v1/users/me").status_code == 200
            assert c.get("/metrics").status_code == 403
        with connect(srv.ws_url + "/ws/events", additional_headers={"X-API-Key": key}, open_timeout=10) as ws:
            ws.send('{"type": "subscribe", "filter": {}}')
            assert '"subscribed"' in ws.recv(timeout=10)
