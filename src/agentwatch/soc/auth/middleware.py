"""Two plain ASGI middlewares: access (stream Origin check, rate limits) and request audit.

``AccessMiddleware`` runs outermost: it refuses Server-Sent-Event requests from a foreign
``Origin`` (WebSocket handshakes are checked by the route guard), then charges the request
to its credential's budget (API key or user) or, without a credential, to its client
address, and adds ``X-RateLimit-*`` headers; over budget it answers 429 with
``Retry-After`` (a WebSocket handshake is closed with 1013, "try again later").

``AuditMiddleware`` appends every POST/PUT/PATCH/DELETE to the audit log with the principal
and the status, and holds the response until the row is stored: an action is never
acknowledged without its audit row (ingest routes commit that row with their events instead,
see ``soc.audit.AuditTicket``). The method, route and path are kept, and the names of
the fields a route says it changed (``request.state.audit_details``); bodies, values, query
strings and headers (where secrets travel) are not.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

import orjson
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentwatch.api.errors import error_body
from agentwatch.api.security import origin_allowed
from agentwatch.soc.audit import AuditEntry, AuditTicket
from agentwatch.soc.auth.credentials import is_stream
from agentwatch.soc.auth.service import AuthService, actor_of, client_of

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRY_AGAIN_LATER = 1013


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class AccessMiddleware:
    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        settings = self.service.settings
        conn = HTTPConnection(scope)
        if scope["type"] == "http" and is_stream(conn) and not origin_allowed(conn, settings.cors_origins):
            await _send_json(send, 403, error_body("FORBIDDEN", "origin: not allowed"), [])
            return
        limits = settings.auth.rate_limit
        if not (settings.auth.enabled and limits.enabled):
            await self.app(scope, receive, send)
            return
        principal = await self.service.peek_principal(conn)
        if principal is None:
            client = client_of(conn)
            if limits.loopback_exempt and _is_loopback(client):
                await self.app(scope, receive, send)
                return
            key, limit = f"addr:{client}", limits.address
        elif principal.kind == "api_key":
            key, limit = f"key:{principal.id}", limits.api_key
        else:
            key, limit = f"{principal.kind}:{principal.id}", limits.user
        decision = await self.service.counter.hit(key, limit, limits.window_s)
        headers = decision.headers()
        if not decision.allowed:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": "rate limit exceeded"})
                return
            message = f"rate limit: {limit} requests per {limits.window_s}s exceeded, retry later"
            await _send_json(send, 429, error_body("RATE_LIMITED", message), headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = message.get("headers", [])
                if not any(name.lower() == b"x-ratelimit-limit" for name, _ in sent):  # a route's tighter budget stays
                    message = {**message, "headers": [*sent, *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


class AuditMiddleware:
    def __init__(self, app: ASGIApp, service: AuthService) -> None:
        self.app = app
        self.service = service

    async def _entry(self, scope: Scope, status: int) -> AuditEntry:
        state = scope.get("state") or {}
        principal = state.get("principal")  # set by the route guard once it let the request in
        if principal is None or principal.kind == "anonymous":
            # refused, or a public route (logout): whoever a valid credential names
            principal = await self.service.peek_principal(HTTPConnection(scope)) or principal
        route = getattr(scope.get("route"), "path", None) or scope["path"]
        return AuditEntry(
            f"{scope['method']} {route}",
            **actor_of(principal),
            target=scope["path"],
            status=status,
            client=client_of(HTTPConnection(scope)),
            # A route may say what its request changed (names, never values): request.state.audit_details.
            details=state.get("audit_details") or {},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING or not self.service.settings.auth.audit.requests:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        audited = False
        ticket = AuditTicket(lambda status: self._entry(scope, status))
        scope.setdefault("state", {})["audit_ticket"] = ticket

        async def held_send(message: Message) -> None:
            # The response start is held until the audit row is stored. A streamed response
            # (an LLM stream through the gateway) is audited at its first chunk and then
            # passed through as it comes, so streaming is not turned into buffering. A row
            # the route already committed with its own writes (the ticket) is not stored twice.
            nonlocal start, audited
            if message["type"] == "http.response.start":
                start = message
                if ticket.stored_status is not None and ticket.stored_status == message["status"]:
                    audited = True
                    await send(message)
                return
            if audited or message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            audited = True
            try:
                await self.service.audit.record(await self._entry(scope, start["status"]))
            except Exception:
                body = error_body("UNAVAILABLE", "audit: the audit log cannot be written; outcome unknown")
                await _send_json(send, 503, body, [(b"retry-after", b"5")])
                raise AuditUnavailable from None
            await send(start)
            await send(message)

        try:
            await self.app(scope, receive, held_send)
        except AuditUnavailable:
            return
        except Exception:
            if not audited:
                with contextlib.suppress(Exception):  # the original error is what gets reported
                    await self.service.audit.record(await self._entry(scope, 500))
            raise


class AuditUnavailable(Exception):
    """Raised into the app to stop a response whose audit row could not be written."""
