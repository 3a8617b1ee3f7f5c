"""Identity routes: login/refresh/logout, the caller's profile, API keys, roles and permissions.

Login, refresh and logout are public (they are how a credential is obtained or given back);
every other route needs one. Request bodies are read under a size cap and validated by
pydantic models that forbid unknown fields; errors name the field and the rule.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agentwatch.api.bodies import json_body_doc, read_model
from agentwatch.api.errors import ApiError, Conflict, InvalidRequest, NotFound
from agentwatch.api.responses import JSON
from agentwatch.api.security import PUBLIC, Principal, require
from agentwatch.soc.auth.credentials import COOKIE
from agentwatch.soc.auth.passwords import generate_password
from agentwatch.soc.auth.roles import ACCOUNT
from agentwatch.soc.auth.service import AuthService
from agentwatch.soc.auth.tokens import Issued
from agentwatch.soc.auth.users import User, normalize_email

router = APIRouter(tags=["auth"])

MAX_BODY = 16 * 1024
M = TypeVar("M", bound=BaseModel)
Scope = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(_Body):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(_Body):
    refresh_token: str = Field(min_length=1, max_length=256)


class LogoutBody(_Body):
    refresh_token: str | None = Field(None, min_length=1, max_length=256)


class PasswordChange(_Body):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UserBody(_Body):
    email: str = Field(min_length=1, max_length=320)
    role: str = Field(min_length=1, max_length=64)
    password: str | None = Field(None, min_length=1, max_length=1024)


class UserUpdate(_Body):
    role: str | None = Field(None, min_length=1, max_length=64)
    disabled: bool | None = None


class ApiKeyBody(_Body):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1, max_length=64)
    expires_days: int | None = Field(None, ge=1, le=3650)


class RoleBody(_Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=1000)
    permissions: list[Scope] = Field(max_length=200)


class RoleUpdate(_Body):
    description: str | None = Field(None, max_length=1000)
    permissions: list[Scope] | None = Field(None, max_length=200)


class PermissionBody(_Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=1000)


class PermissionUpdate(_Body):
    description: str = Field(max_length=1000)


async def parse_json(request: Request, model: type[M], *, optional: bool = False) -> M:
    return await read_model(request, model, MAX_BODY, optional=optional)


async def _within_own(request: Request, svc: AuthService, perms: frozenset[str] | list[str], field: str) -> None:
    """Refuse (403) what would hand out a permission the caller lacks: holding ``users:admin``
    lets one manage users and roles up to one's own permissions, never beyond (API key scopes
    follow the same rule)."""
    p = principal_of(request)
    for perm in sorted(perms):
        if not p.can(perm):
            await svc.record(svc.entry("rbac.escalation_refused", p, request, status=403, details={field: perm}))
            raise ApiError(f"{field}: {perm!r} is beyond your own permissions", status=403)


def service(request: Request) -> AuthService:
    return request.app.state.aw.auth


def principal_of(request: Request) -> Principal:
    return request.state.principal


def tokens_response(issued: Issued, user: User, ttl: int) -> JSON:
    doc = {
        "access_token": issued.access_token,
        "token_type": "bearer",
        "expires_in": issued.access_expires_in,
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": issued.refresh_expires_in,
        "user": user.view(),
    }
    resp = JSON(doc, 200, headers={"Cache-Control": "no-store"})
    # For browsers' EventSource/WebSocket, which cannot send an Authorization header.
    resp.set_cookie(COOKIE, issued.access_token, max_age=ttl, httponly=True, samesite="strict", path="/")
    return resp


# -- sessions ---------------------------------------------------------------------------------


@router.post("/api/v1/auth/login", dependencies=[require(PUBLIC)], openapi_extra=json_body_doc(LoginBody))
async def login(request: Request) -> JSON:
    """Email + password -> access JWT and refresh token. Unknown accounts get the same answer."""
    body = await parse_json(request, LoginBody)
    email = normalize_email(body.email)
    svc = service(request)
    issued, user = await svc.login(email, body.password, request)
    return tokens_response(issued, user, svc.settings.auth.access_ttl_s)


@router.post("/api/v1/auth/refresh", dependencies=[require(PUBLIC)], openapi_extra=json_body_doc(RefreshBody))
async def refresh(request: Request) -> JSON:
    """Spend a refresh token for a new pair; a spent token presented again revokes the session."""
    body = await parse_json(request, RefreshBody)
    svc = service(request)
    issued, user = await svc.refresh(body.refresh_token, request)
    return tokens_response(issued, user, svc.settings.auth.access_ttl_s)


@router.post("/api/v1/auth/logout", dependencies=[require(PUBLIC)], openapi_extra=json_body_doc(LogoutBody))
async def logout(request: Request) -> JSON:
    """End the session of the bearer access token (or of the refresh token in the body)."""
    body = await parse_json(request, LogoutBody, optional=True)
    await service(request).logout(request, body.refresh_token)
    resp = JSON({"revoked": True}, 200)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# -- the caller ---------------------------------------------------------------------------------


def _owner_id(svc: AuthService, p: Principal) -> str:
    if p.kind == "user":
        return p.id
    if p.kind == "api_key":
        return p.extra["owner_id"]
    admin = svc.users.first_admin()
    if admin is None:
        raise Conflict("no user exists to own the key; create one with `agentwatch users create`")
    return admin.id


@router.get("/api/v1/users/me", dependencies=[require(ACCOUNT)])
def me(request: Request) -> dict[str, Any]:
    svc, p = service(request), principal_of(request)
    doc: dict[str, Any] = {"kind": p.kind, "id": p.id, "name": p.name, "permissions": sorted(p.permissions)}
    owner = p.id if p.kind == "user" else p.extra.get("owner_id")
    user = svc.users.get(owner) if owner else None
    if user is not None:
        doc["user"] = user.view()
    if p.kind == "api_key":
        doc["key"] = {
            "id": p.id,
            "name": p.name,
            "prefix": "aw_" + p.extra["prefix"],
            "scopes": list(p.extra["scopes"]),
        }
    return doc


@router.put("/api/v1/users/me/password", dependencies=[require(ACCOUNT)], openapi_extra=json_body_doc(PasswordChange))
async def change_password(request: Request) -> dict[str, Any]:
    """Change your own password; every other session of yours ends."""
    body = await parse_json(request, PasswordChange)
    svc, p = service(request), principal_of(request)
    if p.kind != "user":
        raise ApiError("only a signed-in user can change a password (not an API key)", status=403)
    user = svc.users.get(p.id)
    if user is None or not await svc.verify_current_password(user, body.current_password):
        await svc.record(svc.entry("user.password_change", p, request, status=403, details={"ok": False}))
        raise ApiError("current_password: invalid", status=403)
    await run_in_threadpool(svc.users.set_password, p.id, body.new_password)
    ended = svc.tokens.revoke_user_sessions(p.id, "password_change", keep=p.extra.get("session_id"))
    svc.forget_credentials()
    await svc.record(svc.entry("user.password_change", p, request, status=200, target=f"user:{p.id}"))
    return {"changed": True, "other_sessions_ended": ended}


@router.get("/api/v1/users", dependencies=[require("users:admin")])
def list_users(request: Request) -> dict[str, Any]:
    return {"users": [u.view() for u in service(request).users.list()]}


@router.post(
    "/api/v1/users", dependencies=[require("users:admin")], openapi_extra=json_body_doc(UserBody), status_code=201
)
async def create_user(request: Request) -> JSON:
    """A new user; without ``password`` one is generated and returned once."""
    body = await parse_json(request, UserBody)
    svc = service(request)
    if not svc.roles.exists(body.role):
        raise InvalidRequest(f"role: unknown role {body.role!r}")
    await _within_own(request, svc, svc.roles.permissions_of(body.role), "role")
    password = body.password or generate_password()
    user = await run_in_threadpool(svc.users.create, body.email, password, body.role)
    await svc.record(
        svc.entry(
            "user.create",
            principal_of(request),
            request,
            status=201,
            target=f"user:{user.id}",
            details={"role": body.role},
        )
    )
    doc: dict[str, Any] = user.view()
    if body.password is None:
        doc["password"] = password
    return JSON(doc, 201, headers={"Cache-Control": "no-store"})


@router.put("/api/v1/users/{user_id}", dependencies=[require("users:admin")], openapi_extra=json_body_doc(UserUpdate))
async def update_user(request: Request, user_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    """Change a user's role or disable them (their sessions end at once)."""
    body = await parse_json(request, UserUpdate)
    svc = service(request)
    if body.role is not None and not svc.roles.exists(body.role):
        raise InvalidRequest(f"role: unknown role {body.role!r}")
    current = await run_in_threadpool(svc.users.get, user_id)
    if current is None:
        raise NotFound(f"user {user_id!r} not found")
    await _within_own(request, svc, svc.roles.permissions_of(current.role), "user_id")  # their present role
    if body.role is not None:
        await _within_own(request, svc, svc.roles.permissions_of(body.role), "role")
    user = svc.users.update(user_id, role=body.role, disabled=body.disabled)
    if user is None:
        raise NotFound(f"user {user_id!r} not found")
    if body.disabled:
        svc.tokens.revoke_user_sessions(user_id, "disabled")
    svc.forget_credentials()
    await svc.record(
        svc.entry(
            "user.update",
            principal_of(request),
            request,
            status=200,
            target=f"user:{user_id}",
            details=body.model_dump(exclude_none=True),
        )
    )
    return user.view()


@router.delete("/api/v1/users/{user_id}", dependencies=[require("users:admin")])
async def delete_user(request: Request, user_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    """Delete a user: their sessions end and their API keys are revoked at once; the last
    enabled admin stays (409)."""
    svc = service(request)
    current = await run_in_threadpool(svc.users.get, user_id)
    if current is None:
        raise NotFound(f"user {user_id!r} not found")
    await _within_own(request, svc, svc.roles.permissions_of(current.role), "user_id")
    removed = await run_in_threadpool(svc.users.delete, user_id)
    if removed is None:
        raise NotFound(f"user {user_id!r} not found")
    svc.forget_credentials()
    details = {"email": current.email, "role": current.role, **dataclasses.asdict(removed)}
    await svc.record(
        svc.entry("user.delete", principal_of(request), request, status=200, target=f"user:{user_id}", details=details)
    )
    return {"deleted": True, "id": user_id, **dataclasses.asdict(removed)}


# -- API keys ---------------------------------------------------------------------------------


@router.get("/api/v1/api-keys", dependencies=[require(ACCOUNT)])
def list_keys(request: Request, all_users: Annotated[bool, Query(alias="all")] = False) -> dict[str, Any]:
    """The caller's keys; ``?all=true`` lists everyone's (needs ``users:admin``)."""
    svc, p = service(request), principal_of(request)
    if all_users and not p.can("users:admin"):
        raise ApiError("all: listing every user's keys needs 'users:admin'", status=403)
    keys = svc.keys.list(None if all_users or p.kind == "local" else _owner_id(svc, p))
    return {"keys": [k.view() for k in keys]}


@router.post(
    "/api/v1/api-keys", dependencies=[require(ACCOUNT)], openapi_extra=json_body_doc(ApiKeyBody), status_code=201
)
async def create_key(request: Request) -> JSON:
    """A new key, shown once. Its scopes must all be held by the caller."""
    body = await parse_json(request, ApiKeyBody)
    svc, p = service(request), principal_of(request)
    scopes = svc.roles.check_permissions(body.scopes, "scopes")
    for scope in scopes:
        if not p.can(scope):
            await svc.record(svc.entry("apikey.escalation_refused", p, request, status=403, details={"scope": scope}))
            raise ApiError(f"scopes: {scope!r} is beyond your own permissions", status=403)
    owner = _owner_id(svc, p)
    expires_at = time.time() + body.expires_days * 86400 if body.expires_days else None
    key, plaintext = svc.keys.create(
        owner_id=owner, created_by=f"{p.kind}:{p.id}", name=body.name, scopes=scopes, expires_at=expires_at
    )
    await svc.record(
        svc.entry("apikey.create", p, request, status=201, target=f"apikey:{key.id}", details={"scopes": scopes})
    )
    return JSON({**key.view(), "key": plaintext}, 201, headers={"Cache-Control": "no-store"})


@router.delete("/api/v1/api-keys/{key_id}", dependencies=[require(ACCOUNT)])
async def revoke_key(request: Request, key_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    svc, p = service(request), principal_of(request)
    key = svc.keys.get(key_id)
    if key is None or not (p.can("users:admin") or key.owner_id == _owner_id(svc, p)):
        raise NotFound(f"api key {key_id!r} not found")
    svc.keys.revoke(key_id)
    svc.forget_credentials()
    await svc.record(svc.entry("apikey.revoke", p, request, status=200, target=f"apikey:{key_id}"))
    return {"id": key_id, "revoked": True}


# -- roles and permissions ----------------------------------------------------------------------

ADMIN = "users:admin"
Name = Annotated[str, Path(max_length=64)]


@router.get("/api/v1/rbac/roles", dependencies=[require(ADMIN)])
def list_roles(request: Request) -> dict[str, Any]:
    return {"roles": service(request).roles.list_roles()}


@router.post(
    "/api/v1/rbac/roles", dependencies=[require(ADMIN)], openapi_extra=json_body_doc(RoleBody), status_code=201
)
async def create_role(request: Request) -> JSON:
    body = await parse_json(request, RoleBody)
    svc = service(request)
    await _within_own(request, svc, body.permissions, "permissions")
    role = svc.roles.create_role(body.name, body.description, body.permissions)
    await svc.record(
        svc.entry(
            "rbac.role.create",
            principal_of(request),
            request,
            status=201,
            target=f"role:{body.name}",
            details={"permissions": role["permissions"]},
        )
    )
    return JSON(role, 201)


@router.put("/api/v1/rbac/roles/{name}", dependencies=[require(ADMIN)], openapi_extra=json_body_doc(RoleUpdate))
async def update_role(request: Request, name: Name) -> dict[str, Any]:
    body = await parse_json(request, RoleUpdate)
    svc = service(request)
    if svc.roles.exists(name):  # an unknown one is answered 404 by update_role
        await _within_own(request, svc, svc.roles.permissions_of(name), "name")
    await _within_own(request, svc, body.permissions or [], "permissions")
    role = svc.roles.update_role(name, body.description, body.permissions)
    svc.forget_credentials()
    await svc.record(
        svc.entry(
            "rbac.role.update",
            principal_of(request),
            request,
            status=200,
            target=f"role:{name}",
            details={"permissions": role["permissions"]},
        )
    )
    return role


@router.delete("/api/v1/rbac/roles/{name}", dependencies=[require(ADMIN)])
async def delete_role(request: Request, name: Name) -> dict[str, Any]:
    svc = service(request)
    svc.roles.delete_role(name)
    svc.forget_credentials()
    await svc.record(svc.entry("rbac.role.delete", principal_of(request), request, status=200, target=f"role:{name}"))
    return {"name": name, "deleted": True}


@router.get("/api/v1/rbac/permissions", dependencies=[require(ADMIN)])
def list_permissions(request: Request) -> dict[str, Any]:
    return {"permissions": service(request).roles.list_permissions()}


@router.post(
    "/api/v1/rbac/permissions",
    dependencies=[require(ADMIN)],
    openapi_extra=json_body_doc(PermissionBody),
    status_code=201,
)
async def create_permission(request: Request) -> JSON:
    body = await parse_json(request, PermissionBody)
    svc = service(request)
    perm = svc.roles.create_permission(body.name, body.description)
    await svc.record(
        svc.entry(
            "rbac.permission.create", principal_of(request), request, status=201, target=f"permission:{body.name}"
        )
    )
    return JSON(perm, 201)


@router.put(
    "/api/v1/rbac/permissions/{name}", dependencies=[require(ADMIN)], openapi_extra=json_body_doc(PermissionUpdate)
)
async def update_permission(request: Request, name: Name) -> dict[str, Any]:
    body = await parse_json(request, PermissionUpdate)
    svc = service(request)
    perm = svc.roles.update_permission(name, body.description)
    await svc.record(
        svc.entry("rbac.permission.update", principal_of(request), request, status=200, target=f"permission:{name}")
    )
    return perm


@router.delete("/api/v1/rbac/permissions/{name}", dependencies=[require(ADMIN)])
async def delete_permission(request: Request, name: Name) -> dict[str, Any]:
    svc = service(request)
    svc.roles.delete_permission(name)
    await svc.record(
        svc.entry("rbac.permission.delete", principal_of(request), request, status=200, target=f"permission:{name}")
    )
    return {"name": name, "deleted": True}
