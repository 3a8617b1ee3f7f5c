"""A feed's list served by a real HTTP server on a loopback address: a test sets ``body`` and the
next fetch gets it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi


@dataclass
class FakeList:
    url: str
    body: bytes = b""


@contextmanager
def serve_list(host: str, body: bytes = b"") -> Iterator[FakeList]:
    """Serve ``/list.txt`` on ``host`` (a free port) until the block ends."""
    port = free_port(host)
    listing = FakeList(url=f"http://{host}:{port}/list.txt", body=body)

    async def answer(_request: Request) -> Response:
        return Response(listing.body, media_type="text/plain")

    with serve_asgi(Starlette(routes=[Route("/list.txt", answer)]), host, port):
        yield listing
