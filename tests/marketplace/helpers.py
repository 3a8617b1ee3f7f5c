"""Shared builders for the marketplace tests: signed items and indexes, a fake remote index on
loopback, and a real server reading it (:func:`market`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.config import Settings
from agentwatch.marketplace.signing import public_key_b64, sign_index, sign_item
from tests.support.server import RunningServer, free_port, run_server, serve_asgi

RULE = """title: Remote test rule {version}
id: {rule_id}
status: experimental
description: A rule of the fake remote index ({version}).
logsource:
  product: agentwatch
  category: tool_call
detection:
  sel:
    tool_name: marketplace-test-tool-{version}
  condition: sel
level: {level}
"""


def detection(slug: str, rule_id: str, version: str = "1.0.0", level: str = "low") -> dict[str, Any]:
    return {
        "slug": slug,
        "kind": "detection",
        "name": f"Remote rule {slug}",
        "version": version,
        "summary": "a detection served by the fake remote index",
        "author": "test publisher",
        "tags": ["attack.t1059"],
        "manifest": RULE.format(version=version, rule_id=rule_id, level=level),
    }


def index(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"format": "agentwatch-marketplace/1", "publisher": "test", "items": list(items)})


def sequenced(key: Ed25519PrivateKey, sequence: int | None, *items: dict[str, Any]) -> bytes:
    """An index signed as a whole by ``key`` (its items too), carrying ``sequence`` unless None."""
    doc: dict[str, Any] = {"format": "agentwatch-marketplace/1", "publisher": "test", "items": list(items)}
    if sequence is not None:
        doc["sequence"] = sequence
    return orjson.dumps(sign_index(doc, key))


def remote_items(trusted: Ed25519PrivateKey, other: Ed25519PrivateKey, good_version: str = "1.0.0") -> bytes:
    """One good item, one with a changed manifest, one with a changed name (bad signature), one
    signed by a key nobody trusts, a plugin entry, and one without a readable slug."""
    good = sign_item(detection("remote-good-rule", "7a1b2c3d-0000-4000-8000-000000000001", good_version), trusted)
    tampered = sign_item(detection("remote-tampered-rule", "7a1b2c3d-0000-4000-8000-000000000002"), trusted)
    tampered["manifest"] = tampered["manifest"].replace("level: low", "level: critical")
    resigned = sign_item(detection("remote-bad-signature", "7a1b2c3d-0000-4000-8000-000000000003"), trusted)
    resigned["name"] = "Renamed after signing"
    stranger = sign_item(detection("remote-unknown-key", "7a1b2c3d-0000-4000-8000-000000000004"), other)
    plugin = sign_item(
        {
            "slug": "remote-plugin",
            "kind": "plugin",
            "name": "A plugin package",
            "version": "0.1.0",
            "author": "tests",
            "tags": [],
            "summary": "a plugin entry: a Python package an operator installs with pip",
            "manifest": {"package": "agentwatch-test-plugin", "version": "0.1.0"},
        },
        trusted,
    )
    return index(good, tampered, resigned, stranger, plugin, {"slug": "Not A Slug!", "kind": "detection"})


class FakeIndex:
    """A remote marketplace index over plain HTTP on 127.0.0.1 whose body a test can change."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits = 0
        self.url = ""

    async def _serve(self, request: Request) -> Response:
        self.hits += 1
        return Response(self.body, media_type="application/json")

    @contextmanager
    def running(self) -> Iterator[FakeIndex]:
        port = free_port()
        app = Starlette(routes=[Route("/index.json", self._serve)])
        with serve_asgi(app, "127.0.0.1", port):
            self.url = f"http://127.0.0.1:{port}/index.json"
            yield self


def market_settings(data_dir: Path, database_url: str, url: str, *trusted: Ed25519PrivateKey) -> Settings:
    """A server reading the remote index at ``url`` (loopback, plain HTTP) and trusting ``trusted``."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        marketplace={
            "index_url": url,
            "allow_http": True,
            "allow_private": True,
            "trusted_keys": [public_key_b64(k.public_key()) for k in trusted],
        },
    )


def refetch(server: RunningServer) -> None:
    """Let the next read of the marketplace fetch the remote index again (as if the refresh
    interval had passed)."""
    server.aw.marketplace_catalogue.remote.checked = -1e18


@dataclass
class Market:
    server: RunningServer
    fake: FakeIndex

    def serve(self, body: bytes) -> None:
        """The remote index answers ``body`` from now on, and the server fetches it next time."""
        self.fake.body = body
        refetch(self.server)


@contextmanager
def market(database_url: str, data_dir: Path, body: bytes, *trusted: Ed25519PrivateKey) -> Iterator[Market]:
    """A fake remote index answering ``body`` and a real server reading it, trusting ``trusted``."""
    with FakeIndex(body).running() as fake:
        cfg = market_settings(data_dir, database_url, fake.url, *trusted)
        with run_server(cfg) as srv:
            yield Market(srv, fake)
