"""Shared builders for the marketplace tests: signed items and a fake remote index on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentwatch.marketplace.signing import sign_item
from tests.support.server import free_port, serve_asgi

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
