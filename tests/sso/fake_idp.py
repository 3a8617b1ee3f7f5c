"""A fake OpenID Connect provider on 127.0.0.1: discovery, JWKS, an authorization endpoint
that redirects at once with a code, and a token endpoint that checks the client secret and
the PKCE verifier. Its keys are made with ``cryptography`` when it starts.

A test sets ``identity`` (the claims of the next sign-in) and ``token`` (how the next ID token
is made: claim overrides, algorithm, key) before it drives a flow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tests.support.server import free_port, serve_asgi

CLIENT_ID = "agentwatch-test"
CLIENT_SECRET = "s3cret-client-secret-for-tests"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwk(public: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    doc = json.loads(algorithm.to_jwk(public))
    return {**doc, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class Issued:
    challenge: str
    redirect_uri: str
    nonce: str
    identity: dict[str, Any]
    token: dict[str, Any]


@dataclass
class FakeIdp:
    url: str
    rsa_key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_key: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rogue_key: Any = field(default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048))
    identity: dict[str, Any] = field(default_factory=dict)
    token: dict[str, Any] = field(default_factory=dict)
    metadata_overrides: dict[str, Any] = field(default_factory=dict)
    published: list[str] = field(default_factory=lambda: ["rsa-1", "ec-1"])
    codes: dict[str, Issued] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_delay_s: float = 0.0  # a slow key set, to let sign-ins overlap while it is fetched

    def reset(self, email: str = "alice@example.com") -> None:
        self.identity = {"sub": "sub-" + email, "email": email, "email_verified": True}
        self.token = {}
        self.metadata_overrides = {}
        self.published = ["rsa-1", "ec-1"]
        self.jwks_delay_s = 0.0
        self.calls.clear()
        self.token_requests.clear()

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            **self.metadata_overrides,
        }

    def jwks(self) -> dict[str, Any]:
        keys = {
            "rsa-1": lambda: _jwk(self.rsa_key.public_key(), "rsa-1", "RS256"),
            "ec-1": lambda: _jwk(self.ec_key.public_key(), "ec-1", "ES256"),
            "rogue": lambda: _jwk(self.rogue_key.public_key(), "rogue", "RS256"),
        }
        return {"keys": [keys[k]() for k in self.published]}

    def id_token(self, issued: Issued) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": issued.nonce,
            **issued.identity,
        }
        t = issued.token
        for name, value in t.get("claims", {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        alg, kid = t.get("alg", "RS256"), t.get("kid")
        if alg == "none":
            head = _b64(orjson.dumps({"alg": "none", "typ": "JWT", "kid": kid or "rsa-1"}))
            return f"{head}.{_b64(orjson.dumps(claims))}."
        if alg == "HS256":  # HMAC keyed with the provider's public RSA key (a key-confusion attack)
            pem = self.rsa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            head = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": kid or "rsa-1"}))
            signing_input = f"{head}.{_b64(orjson.dumps(claims))}"
            sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(sig)}"
        key = {"RS256": self.rsa_key, "ES256": self.ec_key}[alg]
        if t.get("key") == "rogue":
            key = self.rogue_key
        kid = kid or {"RS256": "rsa-1", "ES256": "ec-1"}[alg]
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@contextmanager
def fake_idp() -> Iterator[FakeIdp]:
    port = free_port()
    idp = FakeIdp(url=f"http://127.0.0.1:{port}")
    idp.reset()

    async def discovery(request: Request) -> Response:
        idp.calls.append("discovery")
        return Response(orjson.dumps(idp.metadata()), media_type="application/json")

    async def jwks(request: Request) -> Response:
        idp.calls.append("jwks")
        if idp.jwks_delay_s:
            await asyncio.sleep(idp.jwks_delay_s)
        return Response(orjson.dumps(idp.jwks()), media_type="application/json")

    async def authorize(request: Request) -> Response:
        q = request.query_params
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        issued = Issued(q["code_challenge"], q["redirect_uri"], q["nonce"], dict(idp.identity), dict(idp.token))
        idp.codes[code] = issued
        return RedirectResponse(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}), 302)

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        idp.token_requests.append({k: str(v) for k, v in form.items()})
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response(b'{"error": "invalid_client"}', status_code=401, media_type="application/json")
        issued = idp.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        if (
            issued is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != issued.redirect_uri
            or _b64(hashlib.sha256(verifier.encode()).digest()) != issued.challenge
        ):
            return Response(b'{"error": "invalid_grant"}', status_code=400, media_type="application/json")
        doc = {"access_token": "at", "token_type": "Bearer", "id_token": idp.id_token(issued)}
        return Response(orjson.dumps(doc), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ]
    )
    with serve_asgi(app, "127.0.0.1", port):
        yield idp
