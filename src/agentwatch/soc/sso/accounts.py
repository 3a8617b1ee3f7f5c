"""Who a verified identity is here: the account with that e-mail, or, when
``sso.auto_provision`` is on, a new one whose role comes from the groups mapping or the
default role. A role that holds ``admin`` or ``users:admin`` is never handed out this way."""

from __future__ import annotations

from typing import Any

from agentwatch.api.errors import ApiError, Conflict, InvalidRequest
from agentwatch.soc.auth.passwords import generate_password
from agentwatch.soc.auth.service import AuthService
from agentwatch.soc.auth.users import User, normalize_email
from agentwatch.soc.sso.settings import FORBIDDEN_PERMISSIONS, SsoSettings

MAX_GROUPS = 1_000


class Denied(ApiError):
    """The identity is genuine but may not sign in here (answered 403, audited as a failed login)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=403, code="FORBIDDEN")


def groups_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [g for g in value[:MAX_GROUPS] if isinstance(g, str)]
    return []


def role_for(cfg: SsoSettings, groups: list[str]) -> tuple[str, str]:
    """(role, the setting that chose it) for a new account."""
    held = set(groups)
    for group, role in cfg.group_roles.items():
        if group in held:
            return role, f"sso.group_roles[{group!r}]"
    return cfg.default_role, "sso.default_role"


def email_of(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise Denied(f"{field}: no e-mail address in the identity")
    # Accounts are found by the lower-cased address; a character outside ASCII that lower-cases
    # into ASCII (the Kelvin sign K -> k) would let another address at the provider name this one.
    if any(ord(ch) > 127 and any(ord(x) < 128 for x in ch.lower()) for ch in value):
        raise Denied(f"{field}: holds a character that lower-cases to a different ASCII one (refused)")
    if value != value.strip():  # the lookup strips white space: the IdP's address must not carry any
        raise Denied(f"{field}: has white space around the address (refused)")
    try:
        return normalize_email(value, field)
    except InvalidRequest as exc:
        raise Denied(exc.message) from None


def account_for(svc: AuthService, cfg: SsoSettings, email: str, groups: list[str]) -> tuple[User, bool]:
    """(the account, whether it was created now); raises :class:`Denied`."""
    user = svc.users.by_email(email)
    if user is None:
        if not cfg.auto_provision:
            raise Denied("email: no account has this address and sso.auto_provision is off")
        role, setting = role_for(cfg, groups)
        if not svc.roles.exists(role):
            raise Denied(f"{setting}: the role {role!r} does not exist")
        granted = svc.roles.permissions_of(role) & FORBIDDEN_PERMISSIONS
        if granted:
            raise Denied(f"{setting}: the role {role!r} holds {sorted(granted)[0]!r}, which sign-on never grants")
        try:
            return svc.users.create(email, generate_password(), role), True
        except Conflict:  # created meanwhile by a concurrent sign-on
            user = svc.users.by_email(email)
            if user is None:
                raise
    if user.disabled:
        raise Denied("user: the account is disabled")
    return user, False
