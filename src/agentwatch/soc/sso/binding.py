"""Binding a sign-on to the browser that started it, so that nobody can make another person's
browser finish a sign-on they started themselves (login CSRF).

Starting a sign-on (OIDC or SAML) sets the cookie ``aw_sso`` to a fresh random value; only its
SHA-256 is kept, with the pending sign-on (``sso_requests.binding``). Where the sign-on comes
back, the pending sign-on is taken (used once, whatever follows) and the browser's cookie must
hash to what was kept. The cookie is cleared by every answer of the route that reads it.

The flows differ only in how the cookie travels (``Binding``): the OIDC provider sends the
browser back with a top-level GET, which ``SameSite=Lax`` allows; a SAML IdP posts a form to us
from its own site, which only ``SameSite=None`` allows, and browsers take that only with
``Secure``, so the SAML cookie is always ``Secure`` (SAML sign-on needs HTTPS, or localhost)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from agentwatch.api.errors import ApiError, InvalidRequest

COOKIE = "aw_sso"
MAX_COOKIE = 128  # what we set is 43 characters

R = TypeVar("R", bound=Response)


def digest(value: str) -> str:
    """What is kept of a cookie value: its SHA-256, hex."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Binding:
    field: str  # the parameter naming the sign-on when it comes back, named in refusals
    path: str  # the cookie goes back only to this flow's routes
    same_site: Literal["lax", "none"]
    always_secure: bool  # False: Secure when the request came over https

    def new(self) -> tuple[str, str]:
        """(the cookie value for the browser, the digest to keep with the pending sign-on)."""
        value = secrets.token_urlsafe(32)
        return value, digest(value)

    def _secure(self, request: Request) -> bool:
        return self.always_secure or request.url.scheme == "https"

    def set(self, response: Response, request: Request, value: str, ttl_s: int) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=ttl_s,
            path=self.path,
            httponly=True,
            samesite=self.same_site,
            secure=self._secure(request),
        )

    def check(self, request: Request, kept: str) -> None:
        """Refuse (400) unless this browser holds the cookie whose digest ``kept`` is."""
        value = request.cookies.get(COOKIE, "")
        if not value:
            raise InvalidRequest(f"{self.field}: the sign-on was not started by this browser (no {COOKIE} cookie)")
        if len(value) > MAX_COOKIE:
            raise InvalidRequest(f"{self.field}: the {COOKIE} cookie is longer than {MAX_COOKIE} characters")
        if not kept or not hmac.compare_digest(digest(value).encode(), kept.encode()):
            raise InvalidRequest(
                f"{self.field}: the sign-on was not started by this browser"
                f" (the {COOKIE} cookie belongs to another sign-on)"
            )

    def clearing(self, request: Request) -> str:
        """The Set-Cookie header value that removes the cookie (same path and attributes)."""
        scratch = Response()
        scratch.delete_cookie(
            COOKIE, path=self.path, httponly=True, samesite=self.same_site, secure=self._secure(request)
        )
        return scratch.headers["set-cookie"]

    async def cleared_after(self, request: Request, finish: Callable[[], Awaitable[R]]) -> R:
        """Run the route's ``finish``; its answer, success or refusal, clears the cookie."""
        try:
            response = await finish()
        except ApiError as exc:
            exc.headers = {**(exc.headers or {}), "Set-Cookie": self.clearing(request)}
            raise
        response.headers.append("set-cookie", self.clearing(request))
        return response


OIDC = Binding("state", "/api/v1/auth/oidc", "lax", always_secure=False)
SAML = Binding("InResponseTo", "/api/v1/auth/saml", "none", always_secure=True)
