"""A fake alert receiver (webhook / Slack / Teams / PagerDuty endpoint) on loopback."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.server import free_port

__all__ = ["Receiver", "free_port"]


class Receiver:
    """Records every POST: path, headers and raw body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            return JSONResponse({"status": "success"}, status_code=202 if request.url.path == "/pd" else 200)

        async def fail(request: Request) -> Response:
            await request.body()
            return Response("no", status_code=500)

        async def redirect(request: Request) -> Response:
            return RedirectResponse("http://127.0.0.1:1/elsewhere", status_code=307)

        return Starlette(
            routes=[
                Route("/fail", fail, methods=["POST"]),
                Route("/redirect", redirect, methods=["POST"]),
                Route("/{rest:path}", hook, methods=["POST"]),
            ]
        )
