"""One JSON error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

Exception tree::

    ApiError            a 4xx/5xx with a code, raised by routes
     ├─ NotFound        404 NOT_FOUND
     ├─ InvalidRequest  400 INVALID_REQUEST (field and rule in the message)
     ├─ TooLarge        413 PAYLOAD_TOO_LARGE
     ├─ Conflict        409 CONFLICT
     └─ Unavailable     503 UNAVAILABLE (with Retry-After)
    WebSocketDenied     a WebSocket handshake refused with an HTTP 401/403 and this shape
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from agentwatch.api.responses import JSON

log = structlog.get_logger("agentwatch.api")

STATUS_CODES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_REQUEST",
    429: "RATE_LIMITED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    status = 400
    code = "INVALID_REQUEST"

    def __init__(
        self,
        message: str,
        details: Any = None,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if status is not None:
            self.status = status
            self.code = code or STATUS_CODES.get(status, "ERROR")
        if code is not None:
            self.code = code
        self.headers = headers


class NotFound(ApiError):
    status = 404
    code = "NOT_FOUND"


class InvalidRequest(ApiError):
    status = 400
    code = "INVALID_REQUEST"


class TooLarge(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Conflict(ApiError):
    status = 409
    code = "CONFLICT"


class Unavailable(ApiError):
    status = 503
    code = "UNAVAILABLE"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    where = loc[0] if loc else ""
    name = ".".join(parts) or "body"
    return f"{name}" if where != "header" else f"header {name}"


WS_POLICY_VIOLATION = 1008


class WebSocketDenied(Exception):
    """Refuses a WebSocket handshake as an HTTP answer, so a client tells 401 from 403 as on
    any other route (servers without the ASGI denial-response extension get a 1008 close)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def install(app: FastAPI) -> None:
    @app.exception_handler(ClientDisconnect)
    async def _client_gone(_: Request, exc: ClientDisconnect) -> JSON:
        # Nobody reads this answer; it gives the audit row a 4xx instead of an error and a 500.
        return JSON(error_body("INVALID_REQUEST", "body: the client disconnected before sending all of it"), 400)

    @app.exception_handler(WebSocketDenied)
    async def _ws_denied(ws: WebSocket, exc: WebSocketDenied) -> None:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            code = STATUS_CODES.get(exc.status, "ERROR")
            await ws.send_denial_response(JSON(error_body(code, exc.message), exc.status, headers=headers))
        else:
            await ws.close(WS_POLICY_VIOLATION, reason=exc.message)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSON:
        return JSON(error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSON:
        problems = [
            {"field": _field(tuple(err.get("loc", ()))), "rule": err.get("msg", "invalid")} for err in exc.errors()
        ]
        first = problems[0] if problems else {"field": "request", "rule": "invalid"}
        message = f"{first['field']}: {first['rule']}"
        return JSON(error_body("INVALID_REQUEST", message, problems), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSON:
        code = STATUS_CODES.get(exc.status_code, "ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ").lower()
        details = exc.detail if not isinstance(exc.detail, str) else None
        return JSON(error_body(code, message, details), exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSON:
        log.exception("api.unhandled", error_type=type(exc).__name__)
        return JSON(error_body("INTERNAL_ERROR", "internal server error"), 500)
