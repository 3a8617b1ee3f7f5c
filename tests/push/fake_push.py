"""A fake Web Push service: a real HTTP server on 127.0.0.1 that checks each push as a
browser vendor's service and the browser together would.

Each device is a user-agent key pair made by the test (:meth:`FakePushService.device`). A push
to ``/push/<device>`` must carry ``Authorization: vapid t=<JWT>, k=<key>`` whose key is the one
agentwatch serves, whose ES256 signature verifies with it, with ``aud`` this server's origin, an
``exp`` at most 24 h ahead and a ``sub``; ``Content-Encoding: aes128gcm``, ``TTL`` and
``Urgency``. The body is decrypted with the device's private key and auth secret (``http_ece``).
A push that fails a check is answered 400 and kept in ``refused``. A device may be told to
answer otherwise (``answer``: status, headers, body).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi

VAPID = re.compile(r"vapid t=([A-Za-z0-9_.-]+), k=([A-Za-z0-9_-]+)")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Device:
    name: str
    endpoint: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    received: list[dict[str, Any]] = field(default_factory=list)
    answer: tuple[int, dict[str, str], bytes] = (201, {}, b"")
    hits: int = 0
    delay_s: float = 0.0  # how long it takes to answer

    def subscription(self, **extra: Any) -> dict[str, Any]:
        """The browser's ``PushSubscription.toJSON()``."""
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64(point), "auth": b64(self.auth)},
            **extra,
        }


class FakePushService:
    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.public_key: str | None = None  # agentwatch's VAPID key, as it serves it
        self.devices: dict[str, Device] = {}
        self.refused: list[str] = []
        self.app = Starlette(routes=[Route("/push/{name}", self._push, methods=["POST"])])

    def device(self, name: str) -> Device:
        dev = Device(name, f"{self.origin}/push/{name}", ec.generate_private_key(ec.SECP256R1()), os.urandom(16))
        self.devices[name] = dev
        return dev

    def _check(self, request: Request, body: bytes, dev: Device) -> dict[str, Any]:
        found = VAPID.fullmatch(request.headers.get("authorization", ""))
        if found is None:
            raise ValueError("authorization: not a vapid header")
        token, key = found.groups()
        if key != self.public_key:
            raise ValueError("vapid k: not the key agentwatch serves")
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        claims = jwt.decode(
            token, public, algorithms=["ES256"], audience=self.origin, options={"require": ["aud", "exp", "sub"]}
        )
        if claims["exp"] > time.time() + 24 * 3600:
            raise ValueError("exp: more than 24 h ahead")
        if jwt.get_unverified_header(token).get("alg") != "ES256":
            raise ValueError("alg: not ES256")
        if request.headers.get("content-encoding") != "aes128gcm":
            raise ValueError("content-encoding: not aes128gcm")
        ttl = request.headers.get("ttl", "")
        if not ttl.isdigit():
            raise ValueError("ttl: missing")
        urgency = request.headers.get("urgency")
        if urgency not in ("very-low", "low", "normal", "high"):
            raise ValueError("urgency: missing")
        if len(body) > 4096:
            raise ValueError("body: larger than 4096 bytes")
        plain = http_ece.decrypt(body, private_key=dev.key, auth_secret=dev.auth, version="aes128gcm")
        return {"payload": orjson.loads(plain), "ttl": int(ttl), "urgency": urgency, "claims": claims}

    async def _push(self, request: Request) -> Response:
        dev = self.devices.get(request.path_params["name"])
        if dev is None:
            return Response(status_code=404)
        dev.hits += 1
        if dev.delay_s:
            await asyncio.sleep(dev.delay_s)
        body = await request.body()
        try:
            got = self._check(request, body, dev)
        except Exception as exc:  # every failed check is a refusal the test sees
            self.refused.append(f"{dev.name}: {exc}")
            return Response(str(exc), status_code=400)
        status, headers, answer = dev.answer
        if 200 <= status < 300:
            dev.received.append(got)
        return Response(answer, status_code=status, headers=headers)


@contextmanager
def fake_push_service() -> Iterator[FakePushService]:
    fake = FakePushService()
    with serve_asgi(fake.app, "127.0.0.1", fake.port):
        yield fake
