"""Who a verified identity is here: the account with that e-mail, or, when
``sso.auto_provision`` is on, a new one whose role comes from the groups mapping or the
default role. A role that holds ``admin`` or ``users:admin`` is never handed out this way.

With ``sso.group_roles`` set, the mapping is applied again at every sign-on: an account whose
groups changed at the provider gets the role they map to now (``sso.default_role`` when none
is mapped). An account holding an admin role is never changed by it (sign-on neither grants
nor takes admin), and, unless ``sso.link_existing_admins`` is on, sign-on into an admin
account it did not create is refused: a provider able to assert any address must not reach
a local administrator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from agentwatch.api.errors import ApiError, Conflict, InvalidRequest
from agentwatch.soc.auth.passwords import generate_password
from agentwatch.soc.auth.service import AuthService
from agentwatch.soc.auth.users import User, normalize_email
from agentwatch.soc.sso.settings import FORBIDDEN_PERMISSIONS, SsoSettings
from agentwatch.soc.sso.store import SsoStore

log = structlog.get_logger("agentwatch.sso")
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


def is_verified(value: Any) -> bool:
    """The ID token's ``email_verified``: the boolean true, or the string "true" in any case
    (some providers send it as a string); anything else is not a verified address."""
    return value is True or (isinstance(value, str) and value.isascii() and value.lower() == "true")


@dataclass(frozen=True)
class Account:
    """The account a sign-on enters: whether it was created now, and what the audit entry of
    the login records of a role the groups mapping changed (or could not change)."""

    user: User
    created: bool
    details: dict[str, Any]


def _grantable_role(svc: AuthService, cfg: SsoSettings, groups: list[str]) -> tuple[str, str]:
    role, setting = role_for(cfg, groups)
    if not svc.roles.exists(role):
        raise Denied(f"{setting}: the role {role!r} does not exist")
    granted = svc.roles.permissions_of(role) & FORBIDDEN_PERMISSIONS
    if granted:
        raise Denied(f"{setting}: the role {role!r} holds {sorted(granted)[0]!r}, which sign-on never grants")
    return role, setting


def _holds_admin(svc: AuthService, role: str) -> bool:
    return bool(svc.roles.permissions_of(role) & FORBIDDEN_PERMISSIONS)


def _apply_mapping(svc: AuthService, cfg: SsoSettings, user: User, groups: list[str]) -> Account:
    """The account with the role its groups map to now (``sso.group_roles``, else the default)."""
    role, setting = _grantable_role(svc, cfg, groups)
    if role == user.role:
        return Account(user, False, {})
    try:
        changed = svc.users.update(user.id, role=role)
    except Conflict:
        # the last enabled admin keeps the role: a sign-on must not lock everyone out
        log.warning("sso.role_kept", user_id=user.id, role=user.role, mapped=role, reason="last enabled admin")
        return Account(user, False, {"role_kept": {"role": user.role, "mapped": role, "reason": "last enabled admin"}})
    if changed is None:
        raise Denied("user: the account was deleted during the sign-on")
    log.info("sso.role_changed", user_id=user.id, old=user.role, new=role, setting=setting)
    return Account(changed, False, {"role_changed": {"from": user.role, "to": role, "by": setting}})


def account_for(
    svc: AuthService, store: SsoStore, cfg: SsoSettings, email: str, groups: list[str], method: str
) -> Account:
    """The account a verified identity enters (``method``: oidc or saml); raises :class:`Denied`."""
    user = svc.users.by_email(email)
    if user is None:
        if not cfg.auto_provision:
            raise Denied("email: no account has this address and sso.auto_provision is off")
        role, _ = _grantable_role(svc, cfg, groups)
        try:
            user = svc.users.create(email, generate_password(), role)
        except Conflict:  # created meanwhile by a concurrent sign-on
            user = svc.users.by_email(email)
            if user is None:
                raise
        else:
            store.mark_created(user.id, method)
            return Account(user, True, {})
    if user.disabled:
        raise Denied("user: the account is disabled")
    if _holds_admin(svc, user.role):
        if not cfg.link_existing_admins and not store.created_by_sign_on(user.id):
            raise Denied(
                "sso.link_existing_admins: the account with this e-mail holds an admin role and was not created"
                " by sign-on; sign-on to it is refused while sso.link_existing_admins is false"
            )
        return Account(user, False, {})  # sign-on neither grants nor takes an admin role
    if cfg.group_roles:
        return _apply_mapping(svc, cfg, user, groups)
    return Account(user, False, {})
