"""Roles and permissions: built-ins read-only, custom ones managed through the API."""

from __future__ import annotations

from sqlalchemy import update

from agentwatch.soc.auth_schema import users
from tests.auth.conftest import user_headers


def test_builtin_roles_and_catalogue_are_listed_and_read_only(sqlite_server):
    with sqlite_server.client() as c:
        h = user_headers(sqlite_server, c, "root@example.com", "admin")
        roles = {r["name"]: r for r in c.get("/api/v1/rbac/roles", headers=h).json()["roles"]}
        assert {"admin", "analyst", "viewer", "ingest"} <= set(roles)
        assert roles["ingest"]["permissions"] == ["events:write"]
        assert roles["admin"]["users"] == 2  # the first-start admin and root
        assert "alerts:write" not in roles["viewer"]["permissions"]
        perms = {p["name"]: p for p in c.get("/api/v1/rbac/permissions", headers=h).json()["permissions"]}
        assert perms["events:write"]["builtin"] is True
        assert c.put("/api/v1/rbac/roles/viewer", headers=h, json={"permissions": ["admin"]}).status_code == 409
        assert c.delete("/api/v1/rbac/roles/admin", headers=h).status_code == 409
        assert c.delete("/api/v1/rbac/permissions/events:read", headers=h).status_code == 409
        assert c.put("/api/v1/rbac/permissions/events:read", headers=h, json={"description": "x"}).status_code == 409


def test_custom_role_grants_exactly_its_permissions_and_changes_apply(auth_server):
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "root@example.com", "admin")
        r = c.post(
            "/api/v1/rbac/roles",
            headers=admin,
            json={"name": "auditor", "description": "reads the audit log", "permissions": ["audit:read", "account"]},
        )
        assert r.status_code == 201, r.text
        assert r.json()["permissions"] == ["account", "audit:read"]
        h = user_headers(auth_server, c, "au@example.com", "auditor")
        assert c.get("/api/v1/audit", headers=h).status_code == 200
        assert c.get("/api/events", headers=h).status_code == 403
        r = c.put("/api/v1/rbac/roles/auditor", headers=admin, json={"permissions": ["account", "events:read"]})
        assert r.status_code == 200 and r.json()["permissions"] == ["account", "events:read"]
        assert c.get("/api/events", headers=h).status_code == 200
        assert c.get("/api/v1/audit", headers=h).status_code == 403
        # a role in use cannot be deleted
        r = c.delete("/api/v1/rbac/roles/auditor", headers=admin)
        assert r.status_code == 409 and "held by 1 user" in r.json()["error"]["message"]


def test_unknown_role_denies_everything(sqlite_server):
    """A user whose role no longer resolves gets no permission (fail closed)."""
    with sqlite_server.client() as c:
        h = user_headers(sqlite_server, c, "lost@example.com", "viewer")
        assert c.get("/api/events", headers=h).status_code == 200
        with sqlite_server.aw.engine.begin() as conn:
            conn.execute(update(users).where(users.c.email == "lost@example.com").values(role="vanished"))
        sqlite_server.aw.auth.forget_credentials()
        assert c.get("/api/events", headers=h).status_code == 403
        assert c.get("/api/v1/users/me", headers=h).status_code == 403


def test_custom_permissions_lifecycle(auth_server):
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "root@example.com", "admin")
        r = c.post("/api/v1/rbac/permissions", headers=admin, json={"name": "reports:read", "description": "reports"})
        assert r.status_code == 201 and r.json() == {"name": "reports:read", "description": "reports", "builtin": False}
        assert c.post("/api/v1/rbac/permissions", headers=admin, json={"name": "reports:read"}).status_code == 409
        assert c.post("/api/v1/rbac/permissions", headers=admin, json={"name": "events:read"}).status_code == 409
        r = c.put("/api/v1/rbac/permissions/reports:read", headers=admin, json={"description": "monthly reports"})
        assert r.json()["description"] == "monthly reports"
        c.post("/api/v1/rbac/roles", headers=admin, json={"name": "reporter", "permissions": ["reports:read"]})
        # a custom permission can be given to keys by those who hold it
        assert (
            c.post("/api/v1/api-keys", headers=admin, json={"name": "r", "scopes": ["reports:read"]}).status_code == 201
        )
        r = c.delete("/api/v1/rbac/permissions/reports:read", headers=admin)
        assert r.status_code == 409 and "reporter" in r.json()["error"]["message"]
        assert c.delete("/api/v1/rbac/roles/reporter", headers=admin).status_code == 200
        assert c.delete("/api/v1/rbac/permissions/reports:read", headers=admin).status_code == 200
        names = [p["name"] for p in c.get("/api/v1/rbac/permissions", headers=admin).json()["permissions"]]
        assert "reports:read" not in names
        assert c.delete("/api/v1/rbac/permissions/reports:read", headers=admin).status_code == 404
    actions = {e["action"] for e in auth_server.aw.audit.query(action="rbac.*")}
    assert {"rbac.permission.create", "rbac.permission.update", "rbac.permission.delete", "rbac.role.create"} <= actions


def test_bad_rbac_input_names_the_field(sqlite_server):
    with sqlite_server.client() as c:
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        cases = [
            ({"name": "Bad Name", "permissions": []}, "name: must match"),
            ({"name": "r", "permissions": ["nope:nope"]}, "permissions[0]: unknown permission 'nope:nope'"),
            ({"name": "admin", "permissions": []}, "name: 'admin' is a built-in role"),
            ({"name": "r", "permissions": [], "level": 3}, "level: Extra inputs are not permitted"),
            ({"name": "r" * 65, "permissions": []}, "name: String should have at most 64"),
        ]
        for body, message in cases:
            r = c.post("/api/v1/rbac/roles", headers=admin, json=body)
            assert r.status_code in (400, 409), r.text
            assert r.json()["error"]["message"].startswith(message), r.json()
        r = c.post("/api/v1/rbac/permissions", headers=admin, json={"name": "no-colon"})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("name: must look like")
        assert c.put("/api/v1/rbac/roles/" + "x" * 65, headers=admin, json={}).status_code == 400
        assert c.put("/api/v1/rbac/roles/ghost", headers=admin, json={"description": "x"}).status_code == 404


def test_users_admin_cannot_hand_out_more_than_it_holds(auth_server):
    """``users:admin`` manages users and roles up to the holder's own permissions, so it is
    no back door to ``admin``: each refusal is a 403 naming the field, and is audited."""
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "root@example.com", "admin")
        r = c.post(
            "/api/v1/rbac/roles",
            headers=admin,
            json={"name": "people", "description": "", "permissions": ["users:admin", "account", "events:read"]},
        )
        assert r.status_code == 201, r.text
        h = user_headers(auth_server, c, "hr@example.com", "people")
        me = c.get("/api/v1/users/me", headers=h).json()["id"]
        root = next(
            u["id"] for u in c.get("/api/v1/users", headers=h).json()["users"] if u["email"] == "root@example.com"
        )

        refused = [
            c.put(f"/api/v1/users/{me}", headers=h, json={"role": "admin"}),
            c.post("/api/v1/users", headers=h, json={"email": "x@example.com", "role": "viewer"}),
            c.put(f"/api/v1/users/{root}", headers=h, json={"disabled": True}),
            c.post("/api/v1/rbac/roles", headers=h, json={"name": "up", "description": "", "permissions": ["admin"]}),
            c.put("/api/v1/rbac/roles/people", headers=h, json={"permissions": ["users:admin", "audit:read"]}),
        ]
        assert [r.status_code for r in refused] == [403] * 5, [r.text for r in refused]
        messages = [r.json()["error"]["message"] for r in refused]
        assert messages[0] == "role: 'admin' is beyond your own permissions"
        assert messages[1].startswith("role: ") and messages[2] == "user_id: 'admin' is beyond your own permissions"
        assert messages[3] == "permissions: 'admin' is beyond your own permissions"
        assert messages[4] == "permissions: 'audit:read' is beyond your own permissions"
        assert c.get("/api/v1/users/me", headers=h).json()["user"]["role"] == "people"
        assert c.get("/api/events", headers=admin).status_code == 200  # root still enabled

        # within its own permissions it still manages users and roles
        r = c.post(
            "/api/v1/rbac/roles", headers=h, json={"name": "reader", "description": "", "permissions": ["events:read"]}
        )
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/users", headers=h, json={"email": "new@example.com", "role": "reader"})
        assert r.status_code == 201, r.text
        assert c.put(f"/api/v1/users/{r.json()['id']}", headers=h, json={"disabled": True}).status_code == 200

        audit = c.get("/api/v1/audit", headers=admin, params={"action": "rbac.escalation_refused"}).json()
        assert len([e for e in audit["entries"] if e["action"] == "rbac.escalation_refused"]) == 5, audit
