"""``/api/v1/passkeys``: WebAuthn passkeys (AiSOC's routes).

A ceremony starts with ``POST /challenge`` (``register``: a signed-in user; ``login``:
public, optionally for one account's ``email``) and ends with ``POST /passkeys`` (the new
credential) or ``POST /verify`` (a sign-in answered exactly as the password login answers).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from agentwatch.api.auth import principal_of, service, tokens_response
from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.query import only_query
from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, Guard, Principal, require
from agentwatch.soc.auth.roles import ACCOUNT
from agentwatch.soc.auth.service import AuthService
from agentwatch.soc.auth.users import normalize_email
from agentwatch.soc.passkeys import signed, store
from agentwatch.soc.passkeys.ceremony import (
    Party,
    Refused,
    authentication_options,
    check_client,
    party,
    registration_options,
    verify_registration,
)
from agentwatch.soc.passkeys.signin import sign_in
from agentwatch.soc.passkeys.wire import ChallengeBody, RegisterBody, VerifyBody, b64url, b64url_decode, client_data

router = APIRouter(prefix="/api/v1/passkeys", tags=["passkeys"])
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BODY_BYTES = 64 * 1024
CHALLENGE_BYTES = 32
ADMIN = "users:admin"
NO_STORE = {"Cache-Control": "no-store"}


def _rp(request: Request) -> Party:
    return party(request.app.state.aw.settings)


def _owner(p: Principal) -> str | None:
    """The account a credential acts for (None: a local, unauthenticated development server)."""
    if p.kind == "user":
        return p.id
    if p.kind == "api_key":
        return p.extra["owner_id"]
    return None


def _signed_in_user(p: Principal) -> str:
    if p.kind != "user":
        raise ApiError("passkeys: only a signed-in user can register a passkey (not an API key)", status=403)
    return p.id


def _too_many_challenges(_: Exception) -> ApiError:
    return ApiError(
        "passkeys: too many ceremonies in progress, retry later",
        status=503,
        code="UNAVAILABLE",
        headers={"Retry-After": "30"},
    )


@router.get("", dependencies=[require(ACCOUNT), only_query("user_id")])
async def list_passkeys(
    request: Request, user_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None
) -> dict[str, Any]:
    """The caller's passkeys; ``?user_id=`` another user's (needs ``users:admin``)."""
    _rp(request)
    p = principal_of(request)
    if user_id is not None and not p.can(ADMIN):
        raise ApiError(f"user_id: listing another user's passkeys needs {ADMIN!r}", status=403)
    owner = user_id or _owner(p)
    if owner is None:
        return {"passkeys": []}
    found = await run_in_threadpool(store.of_user, request.app.state.aw.engine, owner)
    return {"passkeys": [k.view() for k in found]}


@router.post("/challenge", dependencies=[require(PUBLIC), only_query()], openapi_extra=json_body_doc(ChallengeBody))
async def challenge(request: Request) -> JSON:
    """Begin a ceremony: the options for ``navigator.credentials.create()`` (``register``) or
    ``.get()`` (``login``). The challenge is single use and expires after
    ``passkeys.challenge_ttl_s``."""
    body = await read_model(request, ChallengeBody, BODY_BYTES)
    rp = _rp(request)
    svc = service(request)
    cfg = svc.settings.passkeys
    engine = request.app.state.aw.engine
    nonce = secrets.token_bytes(CHALLENGE_BYTES)
    if body.purpose == "register":
        if body.email is not None:
            raise InvalidRequest("email: only for purpose 'login' (registration is for the signed-in user)")
        user_id = _signed_in_user(await Guard(ACCOUNT)(request))
        user = await run_in_threadpool(svc.users.get, user_id)
        if user is None:
            raise ApiError("passkeys: the signed-in account no longer exists", status=401)
        mine = await run_in_threadpool(store.of_user, engine, user_id)
        if len(mine) >= cfg.max_per_user:
            raise Conflict(f"passkeys: at most {cfg.max_per_user} per user (passkeys.max_per_user); revoke one first")
        options = registration_options(
            rp, nonce, user.id, user.email, [k.credential_id for k in mine], cfg.challenge_ttl_s
        )
        try:
            await run_in_threadpool(
                store.put_challenge,
                engine,
                nonce,
                body.purpose,
                user.id,
                cfg.challenge_ttl_s,
                cfg.max_challenges_per_user,
                cfg.max_challenges,
            )
        except store.TooManyChallenges as exc:
            raise _too_many_challenges(exc) from None
    else:  # public: signed, nothing kept until it is answered (see signed)
        bound, allowed = await _login_target(svc, engine, body.email)
        options = authentication_options(rp, signed.make(svc, bound, cfg.challenge_ttl_s), allowed, cfg.challenge_ttl_s)
    doc = {"purpose": body.purpose, "expires_in": cfg.challenge_ttl_s, "publicKey": options}
    return JSON(doc, 200, headers=NO_STORE)


async def _login_target(
    svc: AuthService, engine: Any, email: str | None
) -> tuple[str | None, list[tuple[bytes, list[str]]]]:
    """(the account a login challenge is bound to, its credentials for ``allowCredentials``).
    An e-mail that names no account gets a made-up credential derived from it under a server
    key, so the answer does not tell whether the account exists."""
    if email is None:
        return None, []
    email = normalize_email(email)
    user = await run_in_threadpool(svc.users.by_email, email)
    if user is None:
        mark = svc.identifier_hmac("passkey:" + email)
        return "x" + mark[:35], [(bytes.fromhex(mark[:32]), [])]
    mine = await run_in_threadpool(store.of_user, engine, user.id)
    return user.id, [(b64url_decode(k.credential_id), k.transports) for k in mine]


@router.post(
    "", status_code=201, dependencies=[require(ACCOUNT), only_query()], openapi_extra=json_body_doc(RegisterBody)
)
async def register(request: Request) -> JSON:
    """Complete a registration ceremony begun with ``/challenge`` ``{"purpose": "register"}``."""
    body = await read_model(request, RegisterBody, BODY_BYTES)
    rp = _rp(request)
    svc, p = service(request), principal_of(request)
    user_id = _signed_in_user(p)
    cfg = svc.settings.passkeys
    engine = request.app.state.aw.engine
    cred = body.credential
    data = client_data(cred.response.clientDataJSON)
    try:
        if signed.parse(data.challenge) is not None:
            raise Refused("credential.response.clientDataJSON: challenge was issued for 'login', not for 'register'")
        pending = await run_in_threadpool(store.take_challenge, engine, data.challenge)
        _check_pending(pending, user_id)
        check_client(rp, data, "webauthn.create")
        made = await asyncio.to_thread(verify_registration, rp, cred, data.challenge)
    except Refused as exc:
        await svc.record(
            svc.entry("passkey.register", p, request, status=400, details={"ok": False, "reason": str(exc)})
        )
        raise InvalidRequest(str(exc)) from None
    fields = {
        "credential_id": b64url(made.credential_id),
        "public_key": made.public_key,
        "sign_count": made.sign_count,
        "name": body.name or "passkey",
        "transports": list(cred.response.transports),
        "aaguid": made.aaguid,
        "backed_up": made.backed_up,
    }
    try:
        key = await run_in_threadpool(store.add, engine, user_id, fields, cfg.max_per_user)
    except store.TooManyPasskeys:
        raise Conflict(f"passkeys: at most {cfg.max_per_user} per user (passkeys.max_per_user)") from None
    except store.CredentialTaken:
        raise Conflict("credential.id: this credential is registered already") from None
    await svc.record(svc.entry("passkey.register", p, request, status=201, target=f"passkey:{key.id}"))
    return JSON(key.view(), 201, headers=NO_STORE)


def _check_pending(pending: store.Challenge | None, user_id: str) -> None:
    field = "credential.response.clientDataJSON"
    if pending is None:
        raise Refused(f"{field}: challenge is unknown or was used already")
    if pending.expires_at <= time.time():
        raise Refused(f"{field}: challenge has expired")
    if pending.purpose != "register":
        raise Refused(f"{field}: challenge was issued for {pending.purpose!r}, not for 'register'")
    if pending.user_id != user_id:
        raise Refused(f"{field}: challenge was issued to another user")


@router.post("/verify", dependencies=[require(PUBLIC), only_query()], openapi_extra=json_body_doc(VerifyBody))
async def verify(request: Request) -> JSON:
    """Complete a login ceremony: the same tokens, cookie and audit entry as the password
    login (``auth.login``, with ``method: passkey``)."""
    body = await read_model(request, VerifyBody, BODY_BYTES)
    rp = _rp(request)
    svc = service(request)
    issued, user = await sign_in(svc, request, body, rp)
    return tokens_response(issued, user, svc.settings.auth.access_ttl_s)


@router.delete("/{passkey_id}", dependencies=[require(ACCOUNT), only_query()])
async def revoke(request: Request, passkey_id: str) -> dict[str, Any]:
    """Revoke one of one's own passkeys (anyone's with ``users:admin``)."""
    if UUID_RE.fullmatch(passkey_id) is None:
        raise InvalidRequest("passkey_id: must be a UUID")
    _rp(request)
    svc, p = service(request), principal_of(request)
    engine = request.app.state.aw.engine
    key = await run_in_threadpool(store.get, engine, passkey_id)
    if key is None or not (p.can(ADMIN) or key.user_id == _owner(p)):
        raise NotFound("passkey not found", {"passkey_id": passkey_id})
    if not await run_in_threadpool(store.remove, engine, passkey_id):
        raise NotFound("passkey not found", {"passkey_id": passkey_id})
    details = {"user_id": key.user_id, "name": key.name}
    await svc.record(
        svc.entry("passkey.revoke", p, request, status=200, target=f"passkey:{passkey_id}", details=details)
    )
    return {"id": passkey_id, "revoked": True}
