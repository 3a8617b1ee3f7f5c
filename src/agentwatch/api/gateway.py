"""``/gateway/<route>/<path>``: the LLM gateway's routes (see ``agentwatch.capture.gateway``).

Agents keep their provider key in ``Authorization`` / ``x-api-key`` / ``x-goog-api-key``;
it goes to the upstream untouched and is never used to authenticate to agentwatch. An
agent authenticates to agentwatch with an agentwatch API key in ``X-Agentwatch-Key``, or
not at all on a loopback-bound server (the ``open_ingest_on_loopback`` rule of ingest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.responses import Response

from agentwatch.api.bodies import read_limited
from agentwatch.api.errors import NotFound, Unavailable
from agentwatch.api.fastlane import fast_lane
from agentwatch.api.security import Guard, Principal

PROVIDER_KEY_HEADERS = frozenset({b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key", b"cookie"})
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# the path parameters, documented here because the endpoint reads them from the matched path itself
PATH_PARAMETERS = [
    {"name": "route", "in": "path", "required": True, "schema": {"type": "string", "title": "Route"}},
    {"name": "path", "in": "path", "required": True, "schema": {"type": "string", "title": "Path"}},
]


class GatewayGuard(Guard):
    """The permission check, run on a view of the request without the provider's credentials.

    The authenticator sees only ``X-Agentwatch-Key`` (presented as both ``Authorization:
    Bearer`` and ``X-API-Key``), so a provider key is never mistaken for, or checked as, an
    agentwatch credential.
    """

    async def __call__(self, conn: HTTPConnection) -> Principal:
        if not conn.app.state.aw.settings.auth.enabled:
            return await super().__call__(conn)
        raw = [(k, v) for k, v in conn.scope["headers"] if k not in PROVIDER_KEY_HEADERS]
        own = conn.headers.get("x-agentwatch-key")
        if own:
            raw.append((b"authorization", b"Bearer " + own.encode("latin-1")))
            raw.append((b"x-api-key", own.encode("latin-1")))
        view = HTTPConnection({**conn.scope, "headers": raw})
        return await super().__call__(view)


router = APIRouter(tags=["gateway"])


@fast_lane
async def gateway(request: Request) -> Response:
    """Forwards to the route's upstream (``capture.routes``) and records the exchange."""
    # route and path are plain strings taken from the matched path: declared as parameters,
    # they would be validated again on every request for nothing
    params = request.path_params
    route: str = params["route"]
    path: str = params["path"]
    gw: Any = request.app.state.aw.components.get("gateway")
    if gw is None or gw.pool is None:
        raise Unavailable("gateway: not running")
    if route not in gw.routes:
        raise NotFound(f"route: no gateway route named {route[:64]!r} (configure capture.routes)")
    body = await read_limited(request, gw.settings.max_request_bytes)
    return await _unless_client_leaves(request, gw.handle(request, route, path, body))


async def _unless_client_leaves(request: Request, handling: Awaitable[Response]) -> Response:
    """Wait for the upstream's answer only while the client is still there: an agent that hangs
    up must not leave the gateway holding an upstream connection until the read timeout."""

    async def left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    answer = asyncio.ensure_future(handling)
    watcher = asyncio.ensure_future(left())
    try:
        await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not answer.done():
            answer.cancel()  # the upstream request is closed and its pool slot given back
    if answer.cancelled():
        raise ClientDisconnect()
    return answer.result()


for _method in METHODS:  # one operation per method: OpenAPI operation ids must be unique
    router.add_api_route(
        "/gateway/{route}/{path:path}",
        gateway,
        methods=[_method],
        operation_id=f"gateway_{_method.lower()}",
        name=f"gateway_{_method.lower()}",
        dependencies=[Depends(GatewayGuard("gateway:use", open_on_loopback=True))],
        response_model=None,
        openapi_extra={"parameters": PATH_PARAMETERS},
    )
