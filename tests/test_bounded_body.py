"""Outbound answers are read with a bound on their decoded size (agentwatch.net.bounded_body):
a compressed bomb is refused before it is inflated into memory, by the feed fetcher and by the
LLM client alike."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.intel.feeds import FeedError, fetch
from agentwatch.intel.settings import FeedSettings
from agentwatch.net.bounded_body import BadEncoding, BodyTooLarge, read_bounded
from tests.support.server import free_port, serve_asgi

HOST = "127.0.0.63"
TEXT = b"".join(b"198.51.100.%d\n" % i for i in range(200))
BOMB_SIZE = 256 * 1024 * 1024  # zeros: about 250 KiB once gzipped


@dataclass
class Served:
    url: str
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path -> (bytes, content-encoding)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    port = free_port(HOST)
    srv = Served(url=f"http://{HOST}:{port}")
    zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = zeros.compress(bytes(BOMB_SIZE)) + zeros.flush()
    raw_deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    srv.bodies = {
        "/plain": (TEXT, ""),
        "/gzip": (gzip.compress(TEXT), "gzip"),
        "/two-members": (gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:]), "gzip"),
        "/deflate": (zlib.compress(TEXT), "deflate"),
        "/raw-deflate": (raw_deflate.compress(TEXT) + raw_deflate.flush(), "deflate"),
        "/bomb": (bomb, "gzip"),
        "/corrupt": (gzip.compress(TEXT)[:10] + b"\xff" * 64, "gzip"),
        "/truncated": (gzip.compress(TEXT)[:-12], "gzip"),
        "/brotli": (b"\x0b\x02\x80hello\x03", "br"),
        "/stacked": (gzip.compress(gzip.compress(TEXT)), "gzip, gzip"),
    }

    async def serve(request: Request) -> Response:
        body, coding = srv.bodies[request.url.path]
        headers = {"Content-Encoding": coding} if coding else {}
        return Response(body, media_type="text/plain", headers=headers)

    app = Starlette(routes=[Route(path, serve) for path in srv.bodies])
    with serve_asgi(app, HOST, port):
        yield srv


async def read(url: str, max_bytes: int) -> bytes:
    async with httpx.AsyncClient(trust_env=False) as client, client.stream("GET", url) as response:
        return await read_bounded(response, max_bytes)


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/two-members", "/deflate", "/raw-deflate"])
async def test_every_accepted_coding_decodes_to_the_text(served: Served, path: str) -> None:
    assert await read(served.url + path, len(TEXT)) == TEXT


@pytest.mark.parametrize("path", ["/plain", "/gzip", "/deflate"])
async def test_one_byte_over_the_bound_is_refused(served: Served, path: str) -> None:
    with pytest.raises(BodyTooLarge, match=f"larger than {len(TEXT) - 1} bytes"):
        await read(served.url + path, len(TEXT) - 1)


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/corrupt", "corrupt"),
        ("/truncated", "ends early"),
        ("/brotli", "'br' is not one of gzip, deflate"),
        ("/stacked", "stacked"),
    ],
)
async def test_unreadable_codings_are_refused_naming_why(served: Served, path: str, rule: str) -> None:
    with pytest.raises(BadEncoding, match=rule):
        await read(served.url + path, 1 << 20)


async def test_a_gzip_bomb_is_refused_without_being_inflated(served: Served) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            await read(served.url + "/bomb", 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, peak  # httpx's own decoding held one whole inflated chunk: 64 MB


async def test_the_feed_fetcher_reads_gzip_and_refuses_a_bomb_by_max_bytes(served: Served) -> None:
    feed = FeedSettings(id="z", url=served.url + "/gzip", allow_private=True, max_bytes=len(TEXT))
    assert await fetch(feed) == TEXT
    bomb = FeedSettings(id="b", url=served.url + "/bomb", allow_private=True, max_bytes=1 << 20)
    with pytest.raises(FeedError, match=r"larger than max_bytes \(1048576 bytes\)"):
        await fetch(bomb)
    brotli = FeedSettings(id="r", url=served.url + "/brotli", allow_private=True)
    with pytest.raises(FeedError, match="content coding 'br'"):
        await fetch(brotli)
