"""Where a request carries its credential.

``X-Agentwatch-Key: <key or JWT>`` (first: on gateway routes ``Authorization`` carries the
LLM provider's key), ``Authorization: Bearer <access JWT or API key>`` and
``X-API-Key: <key>`` everywhere; for
WebSocket handshakes and Server-Sent-Event requests (browsers cannot set headers on those)
also the ``aw_access`` cookie and the ``?access_token=`` query parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from agentwatch.soc.auth.apikeys import KEY_PREFIX
from agentwatch.soc.auth.tokens import MAX_TOKEN_CHARS, CredentialError

COOKIE = "aw_access"
QUERY = "access_token"


@dataclass(frozen=True)
class Credential:
    kind: str  # "jwt" or "key"
    token: str


def is_stream(conn: HTTPConnection) -> bool:
    """A WebSocket handshake or an SSE request."""
    if conn.scope["type"] == "websocket":
        return True
    return conn.scope.get("method") == "GET" and "text/event-stream" in conn.headers.get("accept", "")


def _classify(token: str) -> Credential:
    token = token.strip()
    if not token:
        raise CredentialError("credential: empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise CredentialError(f"credential: longer than {MAX_TOKEN_CHARS} characters")
    if not (token.isascii() and token.isprintable()):  # keys and JWTs are printable ASCII
        raise CredentialError("credential: not printable ASCII")
    return Credential("key" if token.startswith(KEY_PREFIX) else "jwt", token)


def extract(conn: HTTPConnection) -> Credential | None:
    """The request's credential, None when it carries none; raises CredentialError when malformed."""
    own = conn.headers.get("x-agentwatch-key")
    if own is not None:  # the gateway's header: Authorization there belongs to the LLM provider
        return _classify(own)
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            raise CredentialError("authorization: only the Bearer scheme is accepted")
        return _classify(value)
    key = conn.headers.get("x-api-key")
    if key is not None:
        cred = _classify(key)
        if cred.kind != "key":
            raise CredentialError("x-api-key: not an API key")
        return cred
    if is_stream(conn):
        token = conn.cookies.get(COOKIE) or conn.query_params.get(QUERY)
        if token:
            return _classify(token)
    return None
