"""How a sign-on ends: exactly as a password login does (the same session, the same token
answer and cookie, the same ``auth.login`` audit entry, with ``method`` recorded), and the
same per-client budget of failed attempts as the password login."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from agentwatch.api.auth import tokens_response
from agentwatch.api.errors import ApiError
from agentwatch.api.responses import JSON
from agentwatch.api.security import Principal
from agentwatch.soc.audit import AuditEntry
from agentwatch.soc.auth.service import AuthService, client_of
from agentwatch.soc.auth.users import User
from agentwatch.soc.sso.accounts import Denied
from agentwatch.soc.sso.oidc import Refused

# what the audit log may keep of a refusal: the message, cut short (it names fields, never secrets)
MAX_REASON = 200


async def signed_in(
    request: Request, method: str, identify: Callable[[], Awaitable[tuple[User, dict[str, object]]]]
) -> JSON:
    """Run ``identify`` (the provider-specific checks, giving the account and audit details)
    under the client's failed-login budget, then open the session."""
    svc: AuthService = request.app.state.aw.auth
    cfg = svc.settings.auth.login
    client = client_of(request)
    taken, refused = await svc.take_attempt((("login:addr:" + client, cfg.per_address),), cfg.window_s)
    if refused is not None:
        await svc.record(AuditEntry("auth.login.throttled", client=client, status=429, details={"method": method}))
        raise ApiError(
            "login: too many failed attempts, retry later",
            status=429,
            headers={"Retry-After": str(refused.retry_after())},
        )
    try:
        user, details = await identify()
    except (Refused, Denied, ApiError) as exc:
        if exc.status >= 500 or exc.status == 404:  # not the caller's failure
            await svc.give_back(taken, cfg.window_s)
            raise
        reason = {"method": method, "reason": exc.message[:MAX_REASON]}
        await svc.record(AuditEntry("auth.login.failure", client=client, status=exc.status, details=reason))
        raise
    except Exception:
        await svc.give_back(taken, cfg.window_s)
        raise
    await svc.give_back(taken, cfg.window_s)  # a successful login costs the address nothing
    await asyncio.to_thread(svc.users.logged_in, user.id)
    issued = await asyncio.to_thread(svc.tokens.start_session, user.id, client)
    principal = Principal(
        "user",
        user.id,
        user.email,
        svc.roles.permissions_of(user.role),
        extra={"role": user.role, "session_id": issued.session_id},
    )
    await svc.record(
        svc.entry(
            "auth.login",
            principal,
            request,
            status=200,
            target=f"session:{issued.session_id}",
            details={"method": method, **details},
        )
    )
    return tokens_response(issued, user, svc.settings.auth.access_ttl_s)
