"""The one permission check every route goes through.

Every route declares what it needs with ``dependencies=[require("events:read")]``
(or ``require(PUBLIC)`` for probes). :func:`check_routes` runs when the app is
built and refuses to start if any route declares nothing, so a new route cannot
forget the check. Credentials are resolved by the configured authenticator
(``app.state.aw.auth``); when none is configured, or the lookup fails, access
is denied, never granted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from fastapi import Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection
from starlette.routing import Mount

from agentwatch.api.errors import WebSocketDenied
from agentwatch.api.permissions import PERMISSIONS

log = structlog.get_logger("agentwatch.security")

PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    kind: str  # "user", "api_key", "anonymous", "local"
    id: str
    name: str
    permissions: frozenset[str] = frozenset()
    tenant: str = "default"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def can(self, permission: str) -> bool:
        return "admin" in self.permissions or permission in self.permissions


ANONYMOUS = Principal("anonymous", "anonymous", "anonymous")
LOCAL_DEV = Principal("local", "local", "local development (--no-auth)", frozenset({"admin"}))


class Authenticator(Protocol):
    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        """The principal behind the request's credential, None when there is none.

        Raises ``HTTPException(401)`` for a credential that is present but invalid."""
        ...


def principal_name(conn: HTTPConnection, default: str = "") -> str:
    """The credential behind a request as ``kind:id`` (``user:...``, ``api_key:...``), for what
    records who did something: never an API key's name, which its creator chooses freely (a key
    named like the admin). ``default`` when the request carries none."""
    principal = getattr(conn.state, "principal", None)
    return f"{principal.kind}:{principal.id}" if principal is not None else default


def deny(conn: HTTPConnection, status: int, message: str) -> Exception:
    """The exception refusing ``conn`` with ``status`` (401 or 403), for HTTP and WebSocket alike."""
    if conn.scope["type"] == "websocket":
        return WebSocketDenied(status, message)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, message, headers=headers)


def origin_allowed(conn: HTTPConnection, allowed: list[str]) -> bool:
    """Same-origin, or listed; requests without Origin (non-browser clients) pass."""
    origin = conn.headers.get("origin")
    if not origin:
        return True
    if origin in allowed:
        return True
    host = conn.headers.get("host", "")
    try:
        return urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


class Guard:
    """A route dependency that authenticates the caller and checks one permission, and then any
    ``also`` needs: ``{permission: why}``, for a route whose answer holds what another
    permission guards (the 403 names the permission and why)."""

    def __init__(self, permission: str, *, open_on_loopback: bool = False, also: dict[str, str] | None = None) -> None:
        self.permission = permission
        self.open_on_loopback = open_on_loopback
        self.also = dict(also or {})

    async def __call__(self, conn: HTTPConnection) -> Principal:
        aw = conn.app.state.aw
        settings = aw.settings
        if conn.scope["type"] == "websocket" and not origin_allowed(conn, settings.cors_origins):
            raise deny(conn, 403, "origin: not allowed")
        if self.permission == PUBLIC:
            conn.state.principal = ANONYMOUS
            return ANONYMOUS
        if not settings.auth.enabled:
            conn.state.principal = LOCAL_DEV
            return LOCAL_DEV
        authenticator: Authenticator | None = getattr(aw, "auth", None)
        principal: Principal | None = None
        if authenticator is not None:
            principal = await authenticator.authenticate(conn)
        if principal is None:
            if self.open_on_loopback and settings.auth.open_ingest_on_loopback and settings.is_loopback:
                conn.state.principal = ANONYMOUS
                return ANONYMOUS
            raise deny(conn, 401, "authentication required")
        for permission, why in [(self.permission, ""), *self.also.items()]:
            try:
                allowed = principal.can(permission)
            except Exception:  # a failed role lookup denies
                log.exception("security.permission_lookup_failed", permission=permission)
                allowed = False
            if not allowed:
                raise deny(conn, 403, f"permission {permission!r} required" + (f": {why}" if why else ""))
        conn.state.principal = principal
        return principal


def require(permission: str, *, open_on_loopback: bool = False, also: dict[str, str] | None = None) -> Any:
    """The route dependency declaring ``permission`` (one of ``permissions.PERMISSIONS``, or PUBLIC),
    and ``also`` permissions the route needs besides, each with why (see :class:`Guard`)."""
    for name in [permission, *(also or {})]:
        if name != PUBLIC and name not in PERMISSIONS:
            raise ValueError(f"unknown permission {name!r}; add it to agentwatch.api.permissions")
    return Depends(Guard(permission, open_on_loopback=open_on_loopback, also=also))


def route_guard(route: APIRoute | APIWebSocketRoute) -> Guard | None:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, Guard):
            return dep.call
        stack.extend(dep.dependencies)
    return None


def iter_api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute | APIWebSocketRoute]]:
    """Every API route with its full path, through included routers of any depth."""
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield prefix + route.path, route
        elif isinstance(route, Mount):
            continue
        else:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                context = getattr(route, "include_context", None)
                extra = getattr(context, "prefix", "") or ""
                yield from iter_api_routes(inner.routes, prefix + extra)


def check_routes(app: FastAPI) -> None:
    """Refuse to build an app with a route that declares no permission."""
    missing = [path for path, route in iter_api_routes(app.routes) if route_guard(route) is None]
    if missing:
        raise RuntimeError(f"routes without a declared permission: {', '.join(sorted(missing))}")
