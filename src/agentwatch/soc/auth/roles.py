"""Roles as sets of permissions, and custom permissions beside the built-in catalogue.

Built-in roles live in code (they change with the permission catalogue and cannot be edited
through the API); custom roles and permissions live in the database. A role that cannot be
found resolves to no permission at all: a failed lookup denies, it never grants.
"""

from __future__ import annotations

import re
import threading
import time

import orjson
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.api.errors import Conflict, InvalidRequest, NotFound
from agentwatch.api.permissions import PERMISSIONS
from agentwatch.soc.auth_schema import permissions as permissions_table
from agentwatch.soc.auth_schema import roles as roles_table
from agentwatch.soc.auth_schema import users as users_table

# Seeing one's own profile and managing one's own API keys is a permission too, so a service
# key (role "ingest") cannot mint further keys.
ACCOUNT = "account"

_READ = ["events:read", "sessions:read", "alerts:read", "rules:read", "scans:read", "settings:read"]
BUILTIN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("everything, including users, roles and the audit log", ("admin",)),
    "analyst": (
        "investigate and respond: read everything, triage alerts, run scans, write rules and cases",
        (
            *_READ,
            "sessions:write",
            "alerts:write",
            "rules:write",
            "scans:run",
            "cases:write",
            "intel:write",
            "playbooks:write",
            "playbooks:run",
            "honeytokens:write",
            "purple:run",
            "oncall:write",
            "approvals:request",
            "compliance:write",
            "gateway:use",
            "metrics:read",
            ACCOUNT,
        ),
    ),
    "viewer": ("read-only access to events, sessions, alerts, rules and scans", (*_READ, ACCOUNT)),
    "ingest": ("service accounts of agents and sensors: send events, nothing else", ("events:write",)),
}

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
PERMISSION_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,30}:[a-z][a-z0-9_.-]{0,31}$")
CACHE_TTL_S = 5.0


class RoleStore:
    """Role and permission lookups, cached briefly so a change made by another process lands too."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._custom: dict[str, frozenset[str]] = {}
        self._custom_perms: dict[str, str] = {}
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    def _load(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < CACHE_TTL_S:
                return
            with self.engine.connect() as conn:
                roles = conn.execute(select(roles_table.c.name, roles_table.c.permissions)).all()
                perms = conn.execute(select(permissions_table.c.name, permissions_table.c.description)).all()
            self._custom = {r.name: frozenset(orjson.loads(r.permissions)) for r in roles}
            self._custom_perms = {p.name: p.description for p in perms}
            self._loaded_at = time.monotonic()

    def permissions_of(self, role: str) -> frozenset[str]:
        """The permissions of ``role``; empty (deny everything) when the role does not exist."""
        builtin = BUILTIN_ROLES.get(role)
        if builtin is not None:
            return frozenset(builtin[1])
        self._load()
        return self._custom.get(role, frozenset())

    def exists(self, role: str) -> bool:
        if role in BUILTIN_ROLES:
            return True
        self._load()
        return role in self._custom

    def catalogue(self) -> dict[str, str]:
        """Every permission a role or key may hold: the built-in ones, then the custom ones."""
        self._load()
        return {**PERMISSIONS, **self._custom_perms}

    def check_permissions(self, names: list[str], field: str) -> list[str]:
        known = self.catalogue()
        for i, name in enumerate(names):
            if name not in known:
                raise InvalidRequest(f"{field}[{i}]: unknown permission {name!r}")
        return sorted(set(names))

    # -- roles ---------------------------------------------------------------------------------

    def list_roles(self) -> list[dict]:
        with self.engine.connect() as conn:
            custom = conn.execute(select(roles_table).order_by(roles_table.c.name)).all()
            grouped = conn.execute(select(users_table.c.role, func.count()).group_by(users_table.c.role)).all()
            counts = {role: n for role, n in grouped}
        out = [
            {"name": n, "description": d, "permissions": sorted(p), "builtin": True, "users": counts.get(n, 0)}
            for n, (d, p) in BUILTIN_ROLES.items()
        ]
        out += [
            {
                "name": r.name,
                "description": r.description,
                "permissions": orjson.loads(r.permissions),
                "builtin": False,
                "users": counts.get(r.name, 0),
            }
            for r in custom
        ]
        return out

    def get_role(self, name: str) -> dict:
        for role in self.list_roles():
            if role["name"] == name:
                return role
        raise NotFound(f"role {name!r} not found")

    def create_role(self, name: str, description: str, perms: list[str]) -> dict:
        if not NAME_RE.fullmatch(name):
            raise InvalidRequest("name: must match ^[a-z][a-z0-9_-]{0,63}$")
        if name in BUILTIN_ROLES:
            raise Conflict(f"name: {name!r} is a built-in role")
        perms = self.check_permissions(perms, "permissions")
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    roles_table.insert().values(
                        name=name,
                        description=description,
                        permissions=orjson.dumps(perms).decode(),
                        builtin=False,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            raise Conflict(f"name: role {name!r} already exists") from None
        self.invalidate()
        return self.get_role(name)

    def update_role(self, name: str, description: str | None, perms: list[str] | None) -> dict:
        if name in BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in and cannot be changed")
        values: dict = {"updated_at": time.time()}
        if description is not None:
            values["description"] = description
        if perms is not None:
            values["permissions"] = orjson.dumps(self.check_permissions(perms, "permissions")).decode()
        with self.engine.begin() as conn:
            if conn.execute(update(roles_table).where(roles_table.c.name == name).values(**values)).rowcount != 1:
                raise NotFound(f"role {name!r} not found")
        self.invalidate()
        return self.get_role(name)

    def delete_role(self, name: str) -> None:
        if name in BUILTIN_ROLES:
            raise Conflict(f"role {name!r} is built in and cannot be deleted")
        with self.engine.begin() as conn:
            used = conn.execute(select(func.count()).select_from(users_table).where(users_table.c.role == name))
            n = used.scalar_one()
            if n:
                raise Conflict(f"role {name!r} is held by {n} user(s); give them another role first")
            if conn.execute(delete(roles_table).where(roles_table.c.name == name)).rowcount != 1:
                raise NotFound(f"role {name!r} not found")
        self.invalidate()

    # -- custom permissions --------------------------------------------------------------------

    def list_permissions(self) -> list[dict]:
        self._load()
        out = [{"name": n, "description": d, "builtin": True} for n, d in PERMISSIONS.items()]
        out += [{"name": n, "description": d, "builtin": False} for n, d in sorted(self._custom_perms.items())]
        return out

    def create_permission(self, name: str, description: str) -> dict:
        if not PERMISSION_RE.fullmatch(name):
            raise InvalidRequest("name: must look like 'area:action' (lowercase letters, digits, '_', '-', '.')")
        if name in PERMISSIONS:
            raise Conflict(f"name: {name!r} is a built-in permission")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    permissions_table.insert().values(name=name, description=description, created_at=time.time())
                )
        except IntegrityError:
            raise Conflict(f"name: permission {name!r} already exists") from None
        self.invalidate()
        return {"name": name, "description": description, "builtin": False}

    def update_permission(self, name: str, description: str) -> dict:
        if name in PERMISSIONS:
            raise Conflict(f"permission {name!r} is built in and cannot be changed")
        with self.engine.begin() as conn:
            stmt = update(permissions_table).where(permissions_table.c.name == name).values(description=description)
            if conn.execute(stmt).rowcount != 1:
                raise NotFound(f"permission {name!r} not found")
        self.invalidate()
        return {"name": name, "description": description, "builtin": False}

    def delete_permission(self, name: str) -> None:
        if name in PERMISSIONS:
            raise Conflict(f"permission {name!r} is built in and cannot be deleted")
        with self.engine.begin() as conn:
            holders = [
                r.name
                for r in conn.execute(select(roles_table.c.name, roles_table.c.permissions)).all()
                if name in orjson.loads(r.permissions)
            ]
            if holders:
                raise Conflict(f"permission {name!r} is held by role(s) {', '.join(sorted(holders))}")
            if conn.execute(delete(permissions_table).where(permissions_table.c.name == name)).rowcount != 1:
                raise NotFound(f"permission {name!r} not found")
        self.invalidate()
