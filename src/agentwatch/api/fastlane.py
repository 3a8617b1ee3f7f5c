"""The fast lane: hot data-plane routes served without the framework's per-request machinery.

Ingest routes take thousands of small POSTs a second. For each one, routing through
every registered route, solving dependencies and validating the return value costs more
than decoding and storing the event. A route marked with :func:`fast_lane` is still an
ordinary FastAPI route (the OpenAPI document, the route-table checks and the tests see it
as before), but a request for its exact method and path is answered here, inside the
access and audit middlewares, by the same guard and the same endpoint function:

- the route's own :class:`~agentwatch.api.security.Guard` runs first (same 401/403);
- the endpoint is called with the :class:`~starlette.requests.Request`;
- a returned mapping becomes the API's JSON response, a returned Response is sent as is;
- exceptions go to the app's exception handlers, so errors keep the one JSON shape.

Only endpoints whose single parameter is the request and whose only dependency is the
guard can be marked; anything else is refused when the app is built. A path with
parameters (``/gateway/{route}/{path:path}``) is matched by the route's own pattern,
and its ``path_params`` are set as the router would set them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from agentwatch.api.responses import JSON
from agentwatch.api.security import Guard, iter_api_routes, route_guard

MARK = "__agentwatch_fast_lane__"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])


def fast_lane(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint to be served by the fast lane (apply below the route decorator)."""
    setattr(endpoint, MARK, True)
    return endpoint


class _Lane:
    __slots__ = ("route", "guard", "endpoint")

    def __init__(self, route: APIRoute, guard: Guard) -> None:
        self.route = route
        self.guard = guard
        self.endpoint = route.endpoint


class LaneTable:
    """The marked routes: exact paths by (method, path); paths with parameters by their static prefix."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], _Lane] = {}
        self.patterned: list[tuple[str, str, _Lane]] = []

    def fill(self, app: FastAPI) -> None:
        """Take the marked routes of ``app``; raises when a marked route cannot be served here."""
        for path, route in iter_api_routes(app.routes):
            if not isinstance(route, APIRoute) or not getattr(route.endpoint, MARK, False):
                continue
            guard = route_guard(route)
            params = list(inspect.signature(route.endpoint).parameters.values())
            if (
                guard is None
                or len(route.dependant.dependencies) != 1
                or len(params) != 1
                or params[0].annotation not in (Request, "Request")
                or path != route.path  # the lane matches the route's own pattern: not under a prefix
            ):
                raise RuntimeError(f"{path}: a fast-lane route takes only the request and depends only on its guard")
            for method in route.methods or ():
                if "{" in path:
                    self.patterned.append((method, path.split("{", 1)[0], _Lane(route, guard)))
                else:
                    self.exact[(method, path)] = _Lane(route, guard)

    def find(self, scope: Scope) -> _Lane | None:
        method, path = scope.get("method", ""), scope["path"]
        lane = self.exact.get((method, path))
        if lane is not None or not self.patterned:
            return lane
        for lane_method, prefix, candidate in self.patterned:
            if lane_method == method and path.startswith(prefix):
                match, child = candidate.route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)  # path_params, endpoint and route, as the router would set
                    return candidate
        return None


def lanes_of(app: FastAPI) -> LaneTable:
    table = LaneTable()
    table.fill(app)
    return table


class FastLaneMiddleware:
    """Installed innermost of the middlewares; the lane table is filled once every router is included."""

    def __init__(self, app: ASGIApp, lanes: LaneTable) -> None:
        self.app = app
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.find(scope) if scope["type"] == "http" else None
        if lane is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = lane.route  # the audit row names the route, as for any other request
        request = Request(scope, receive)
        try:
            await lane.guard(request)
            result = await lane.endpoint(request)
            response = result if isinstance(result, Response) else JSON(result)
        except Exception as exc:  # noqa: BLE001 - handed to the app's handlers, as the router would
            response = await _handled(scope["app"], request, exc)
        await response(scope, receive, send)


async def _handled(app: Any, request: Request, exc: Exception) -> Response:
    handlers = getattr(app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            result = handler(request, exc)
            return await result if inspect.isawaitable(result) else result
    raise exc
