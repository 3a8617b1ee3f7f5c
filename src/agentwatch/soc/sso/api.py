"""The sign-on routes (public: they are how a credential is obtained):
``POST /api/v1/auth/oidc/login``, ``GET /api/v1/auth/oidc/callback``,
``POST /api/v1/auth/saml/login``, ``GET|POST /api/v1/auth/saml/callback``.

A login route answers the URL to send the browser to (JSON, so a single-page app can follow
it) and sets the cookie binding the sign-on to this browser (``binding``); a callback refuses a
browser without that cookie, clears it, and otherwise answers exactly as ``POST /api/v1/auth/login`` does."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from agentwatch.api.bodies import json_body_doc, read_limited, read_model
from agentwatch.api.errors import ApiError, InvalidRequest, NotFound
from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, require
from agentwatch.soc.auth.service import AuthService, client_of
from agentwatch.soc.auth.users import User
from agentwatch.soc.sso import saml
from agentwatch.soc.sso.accounts import Denied, account_for, email_of, groups_of, is_verified
from agentwatch.soc.sso.binding import OIDC, SAML
from agentwatch.soc.sso.login import signed_in
from agentwatch.soc.sso.oidc import Refused, pkce_pair
from agentwatch.soc.sso.service import SsoService
from agentwatch.soc.sso.store import TooManyFromClient, TooManyPending

router = APIRouter(tags=["auth"])

MAX_START_BODY = 1024
MAX_PARAM = 4096
MAX_FORM_EXTRA = 16 * 1024


class StartBody(BaseModel):
    """No fields yet: an empty object (or no body) starts a sign-on."""

    model_config = ConfigDict(extra="forbid")


def _sso(request: Request, provider: str) -> SsoService:
    sso: SsoService = request.app.state.aw.sso
    if not getattr(sso.settings, f"{provider}_enabled"):
        raise NotFound(f"sso.{provider}_enabled: {provider.upper()} sign-on is not enabled on this server")
    return sso


def _auth(request: Request) -> AuthService:
    return request.app.state.aw.auth


def _param(params: Any, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise InvalidRequest(f"{name}: required")
        return None
    if len(value) > MAX_PARAM:
        raise InvalidRequest(f"{name}: longer than {MAX_PARAM} characters")
    return value


async def _pending(request: Request, sso: SsoService, kind: str, value: str, **kw: str) -> None:
    cfg = sso.settings
    client, per_client = client_of(request), cfg.max_pending_per_address
    try:
        await asyncio.to_thread(
            sso.store.add,
            kind,
            value,
            cfg.request_ttl_s,
            cfg.max_pending,
            client=client,
            max_per_client=per_client,
            **kw,
        )
    except TooManyFromClient:
        raise ApiError(
            f"sso.max_pending_per_address: {per_client} sign-ons started from this address are already under way,"
            " retry later",
            status=429,
            headers={"Retry-After": "30"},
        ) from None
    except TooManyPending:
        raise ApiError(
            f"sso.max_pending: {cfg.max_pending} sign-ons are already under way, retry later",
            status=503,
            headers={"Retry-After": "30"},
        ) from None


# -- OpenID Connect -------------------------------------------------------------------------------


@router.post("/api/v1/auth/oidc/login", dependencies=[require(PUBLIC)], openapi_extra=json_body_doc(StartBody))
async def oidc_login(request: Request) -> JSON:
    """Start an OIDC sign-on: the provider's authorization URL to send the browser to (PKCE
    S256, single-use ``state`` and ``nonce`` kept here); sets a cookie binding it to this browser."""
    sso = _sso(request, "oidc")
    await read_model(request, StartBody, MAX_START_BODY, optional=True)
    meta = await sso.oidc.metadata()
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    cookie, kept = OIDC.new()
    verifier, challenge = pkce_pair()
    await _pending(request, sso, "oidc", state, nonce=nonce, verifier=verifier, binding=kept)
    ttl = sso.settings.request_ttl_s
    doc = {"authorization_url": sso.oidc.authorization_url(meta, state, nonce, challenge), "expires_in": ttl}
    resp = JSON(doc, 200, headers={"Cache-Control": "no-store"})
    OIDC.set(resp, request, cookie, ttl)
    return resp


@router.get("/api/v1/auth/oidc/callback", dependencies=[require(PUBLIC)])
async def oidc_callback(request: Request) -> JSON:
    """Where the provider sends the browser back (``code`` and ``state``): the code is
    exchanged, the ID token checked, and the account signed in as by the password login."""
    sso = _sso(request, "oidc")
    params = request.query_params

    async def identify() -> tuple[User, dict[str, object]]:
        state = _param(params, "state") or ""
        pending = await asyncio.to_thread(sso.store.take, "oidc", state)
        if pending is None:
            raise InvalidRequest("state: unknown, expired or already used")
        OIDC.check(request, pending.binding)
        error = _param(params, "error", required=False)
        if error is not None:
            raise Refused(f"error: the provider answered {error[:64]!r}")
        code = _param(params, "code") or ""
        token = await sso.oidc.exchange(code, pending.verifier)
        claims = await sso.oidc.verify(token, pending.nonce)
        if not is_verified(claims.get("email_verified")):
            raise Denied("email_verified: the provider has not verified this e-mail address")
        email = email_of(claims.get("email"), "email")
        groups = groups_of(claims.get(sso.settings.groups_claim))
        found = await asyncio.to_thread(account_for, _auth(request), sso.store, sso.settings, email, groups, "oidc")
        return found.user, {"provisioned": found.created, "subject": str(claims["sub"])[:256], **found.details}

    return await OIDC.cleared_after(request, lambda: signed_in(request, "oidc", identify))


# -- SAML 2.0 -----------------------------------------------------------------------------------


@router.post("/api/v1/auth/saml/login", dependencies=[require(PUBLIC)], openapi_extra=json_body_doc(StartBody))
async def saml_login(request: Request) -> JSON:
    """Start a SAML sign-on: the IdP's SSO URL with the AuthnRequest (HTTP-Redirect binding);
    sets a cookie binding it to this browser (``SameSite=None; Secure``: the IdP posts cross-site)."""
    sso = _sso(request, "saml")
    await read_model(request, StartBody, MAX_START_BODY, optional=True)
    request_id = saml.new_request_id()
    cookie, kept = SAML.new()
    await _pending(request, sso, "saml", request_id, binding=kept)
    ttl = sso.settings.request_ttl_s
    doc = {
        "authorization_url": saml.authn_request_url(sso.settings, request_id),
        "request_id": request_id,
        "expires_in": ttl,
    }
    resp = JSON(doc, 200, headers={"Cache-Control": "no-store"})
    SAML.set(resp, request, cookie, ttl)
    return resp


async def _saml_finish(request: Request, sso: SsoService, value: str | None, deflated: bool) -> JSON:
    cfg = sso.settings

    async def identify() -> tuple[User, dict[str, object]]:
        if value is None or value == "":
            raise InvalidRequest("SAMLResponse: required")
        xml = saml.decode(value, cfg, deflated=deflated)
        identity = await asyncio.to_thread(saml.verify_response, xml, cfg)
        if not await asyncio.to_thread(sso.store.use_assertion, identity.assertion_id, identity.expires_at):
            raise Refused("Assertion: already used (a replayed assertion is refused)")
        pending = await asyncio.to_thread(sso.store.take, "saml", identity.in_response_to)
        if pending is None:
            raise Refused("InResponseTo: no sign-on under way has this request id (unknown, expired or used)")
        SAML.check(request, pending.binding)
        if cfg.saml_email_attribute is not None:
            values = identity.attributes.get(cfg.saml_email_attribute) or [None]
            email = email_of(values[0], cfg.saml_email_attribute)
        else:
            email = email_of(identity.name_id, "NameID")
        groups = identity.attributes.get(cfg.groups_claim, [])
        found = await asyncio.to_thread(account_for, _auth(request), sso.store, cfg, email, groups, "saml")
        return found.user, {"provisioned": found.created, "issuer": identity.issuer[:256], **found.details}

    return await signed_in(request, "saml", identify)


@router.get("/api/v1/auth/saml/callback", dependencies=[require(PUBLIC)])
async def saml_callback(request: Request) -> JSON:
    """The assertion consumer, HTTP-Redirect binding (``?SAMLResponse=``, deflated)."""
    sso = _sso(request, "saml")
    value = request.query_params.get("SAMLResponse")
    return await SAML.cleared_after(request, lambda: _saml_finish(request, sso, value, True))


@router.post("/api/v1/auth/saml/callback", dependencies=[require(PUBLIC)])
async def saml_callback_post(request: Request) -> JSON:
    """The assertion consumer, HTTP-POST binding (a form with ``SAMLResponse`` and ``RelayState``)."""
    sso = _sso(request, "saml")

    async def finish() -> JSON:
        kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise ApiError("content-type: must be application/x-www-form-urlencoded", status=415)
        body = await read_limited(request, sso.settings.saml_max_response_bytes * 2 + MAX_FORM_EXTRA)
        try:
            form = dict(parse_qsl(body.decode("ascii"), max_num_fields=8, strict_parsing=False))
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("body: not a URL-encoded form") from None
        return await _saml_finish(request, sso, form.get("SAMLResponse"), False)

    return await SAML.cleared_after(request, finish)
