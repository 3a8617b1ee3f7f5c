"""Signing in with a passkey: the password login's throttle, session and audit entry, with
the passkey checks in place of the password check.

Refusals are 401 and audited as ``auth.login.failure`` with ``method: passkey`` and the
reason; a good signature whose counter did not move forward is refused and audited as
``auth.passkey.cloned`` (two authenticators hold the key). Attempts count against the same
budgets as failed password logins: the client address always, the account once the
credential names one; a success gives them back as a password login does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request

from agentwatch.api.errors import ApiError
from agentwatch.soc.audit import AuditEntry
from agentwatch.soc.auth.service import AuthService, client_of
from agentwatch.soc.auth.tokens import Issued
from agentwatch.soc.auth.users import User
from agentwatch.soc.passkeys import signed, store
from agentwatch.soc.passkeys.ceremony import Party, Refused, check_client, verify_assertion
from agentwatch.soc.passkeys.wire import VerifyBody, b64url, b64url_decode, client_data

METHOD = "passkey"


class _Failed(Exception):
    def __init__(self, message: str, action: str = "auth.login.failure", **details: Any) -> None:
        super().__init__(message)
        self.action = action
        self.details = details


async def sign_in(svc: AuthService, request: Request, body: VerifyBody, rp: Party) -> tuple[Issued, User]:
    cred = body.credential
    data = client_data(cred.response.clientDataJSON)
    engine = request.app.state.aw.engine
    credential_id = b64url(b64url_decode(cred.rawId))
    passkey = await asyncio.to_thread(store.by_credential, engine, credential_id)
    owner = await asyncio.to_thread(svc.users.get, passkey.user_id) if passkey is not None else None
    cfg = svc.settings.auth.login
    client = client_of(request)
    budgets: list[tuple[str, int]] = [("login:addr:" + client, cfg.per_address)]
    if owner is not None:
        budgets.insert(0, (svc.account_budget(owner.email), cfg.per_account))
    taken, refused = await svc.take_attempt(tuple(budgets), cfg.window_s)
    who = svc.typed_identifier("", owner) if owner is not None else {}
    if refused is not None:
        await svc.record(
            AuditEntry("auth.login.throttled", client=client, status=429, details={"method": METHOD, **who})
        )
        raise ApiError(
            "login: too many failed attempts, retry later",
            status=429,
            headers={"Retry-After": str(refused.retry_after())},
        )
    try:
        user = await _check(svc, engine, rp, body, data.challenge, passkey, owner)
    except _Failed as exc:  # the hits taken stay: they count this failure
        target = f"passkey:{passkey.id}" if passkey is not None else ""
        details = {"method": METHOD, "reason": str(exc), **who, **exc.details}
        await svc.record(AuditEntry(exc.action, client=client, status=401, target=target, details=details))
        raise ApiError(str(exc), status=401) from None
    except Exception:  # not a failed attempt: the check itself failed
        await svc.give_back(taken, cfg.window_s)
        raise
    if owner is not None:
        await svc.attempts.clear(budgets[0][0], cfg.window_s)
    await svc.give_back(taken[1:], cfg.window_s)
    await asyncio.to_thread(svc.users.logged_in, user.id)
    issued = await asyncio.to_thread(svc.tokens.start_session, user.id, client)
    principal = svc.user_principal(user.id, user.email, user.role, issued.session_id)
    await svc.record(
        svc.entry(
            "auth.login",
            principal,
            request,
            status=200,
            target=f"session:{issued.session_id}",
            details={"method": METHOD, "passkey_id": passkey.id if passkey else ""},
        )
    )
    return issued, user


async def _check(
    svc: AuthService,
    engine: Any,
    rp: Party,
    body: VerifyBody,
    challenge: bytes,
    passkey: store.Passkey | None,
    owner: User | None,
) -> User:
    cred = body.credential
    field = "credential.response.clientDataJSON"
    login = signed.parse(challenge)
    if login is None:  # not a login challenge: a registration one is taken, so it is spent too
        pending = await asyncio.to_thread(store.take_challenge, engine, challenge)
        if pending is None:
            raise _Failed(f"{field}: challenge is unknown or was used already")
        raise _Failed(f"{field}: challenge was issued for {pending.purpose!r}, not for 'login'")
    if not login.bound and not login.made_for(svc, None):
        raise _Failed(f"{field}: challenge is unknown or was used already")
    if login.bound and passkey is None:
        raise _Failed("credential.id: no such passkey is registered")
    if login.bound and not login.made_for(svc, passkey.user_id):  # type: ignore[union-attr]
        raise _Failed("credential.id: not a passkey of the account the challenge was made for")
    if login.expires_at <= time.time():
        raise _Failed(f"{field}: challenge has expired")
    if not await asyncio.to_thread(store.spend, engine, challenge, login.expires_at):
        raise _Failed(f"{field}: challenge is unknown or was used already")
    try:
        check_client(rp, client_data(cred.response.clientDataJSON), "webauthn.get")
    except Refused as exc:
        raise _Failed(str(exc)) from None
    if passkey is None:
        raise _Failed("credential.id: no such passkey is registered")
    if owner is None or owner.disabled:
        raise _Failed("credential.id: the passkey's account is disabled or deleted")
    handle = cred.response.userHandle
    if handle and b64url_decode(handle) != owner.id.encode():
        raise _Failed("credential.response.userHandle: is not the passkey's account")
    try:
        counter = await asyncio.to_thread(verify_assertion, rp, cred, challenge, passkey.public_key)
    except Refused as exc:
        raise _Failed(str(exc)) from None
    if (counter or passkey.sign_count) and counter <= passkey.sign_count:
        raise _Failed(
            "credential.response.authenticatorData: signature counter did not increase (cloned authenticator?)",
            action="auth.passkey.cloned",
            stored_count=passkey.sign_count,
            presented_count=counter,
        )
    if not await asyncio.to_thread(store.used, engine, passkey.id, passkey.sign_count, counter):
        raise _Failed(
            "credential.response.authenticatorData: signature counter changed by a concurrent sign-in",
            action="auth.passkey.cloned",
            stored_count=passkey.sign_count,
            presented_count=counter,
        )
    return owner
