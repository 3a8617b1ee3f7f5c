"""User administration and password changes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.auth.conftest import PASSWORD, bearer, login, user_headers


def test_admin_creates_changes_and_disables_users(auth_server):
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "root@example.com", "admin")
        r = c.post("/api/v1/users", headers=admin, json={"email": "new@example.com", "role": "viewer"})
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["role"] == "viewer" and len(made["password"]) >= 20
        h = bearer(login(c, "new@example.com", made["password"])["access_token"])
        assert "alerts:write" not in c.get("/api/v1/users/me", headers=h).json()["permissions"]

        r = c.put(f"/api/v1/users/{made['id']}", headers=admin, json={"role": "analyst"})
        assert r.status_code == 200 and r.json()["role"] == "analyst"
        assert "alerts:write" in c.get("/api/v1/users/me", headers=h).json()["permissions"]

        assert c.put(f"/api/v1/users/{made['id']}", headers=admin, json={"disabled": True}).status_code == 200
        assert c.get("/api/v1/users/me", headers=h).status_code == 401
        r = c.post("/api/v1/auth/login", json={"email": "new@example.com", "password": made["password"]})
        assert r.status_code == 401 and r.json()["error"]["message"] == "email or password: invalid"

        emails = {u["email"] for u in c.get("/api/v1/users", headers=admin).json()["users"]}
        assert {"root@example.com", "new@example.com", "admin@agentwatch.local"} <= emails
        r = c.post("/api/v1/users", headers=admin, json={"email": "new@example.com", "role": "viewer"})
        assert r.status_code == 409
        r = c.post("/api/v1/users", headers=admin, json={"email": "x@example.com", "role": "wizard"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "role: unknown role 'wizard'"
        r = c.post(
            "/api/v1/users", headers=admin, json={"email": "y@example.com", "role": "viewer", "password": "short"}
        )
        assert r.status_code == 400 and r.json()["error"]["message"] == "password: must be at least 12 characters"
        assert c.put("/api/v1/users/nope", headers=admin, json={"role": "viewer"}).status_code == 404
    actions = [e["action"] for e in auth_server.aw.audit.query(action="user.*")]
    assert actions.count("user.update") == 2 and "user.create" in actions


def test_the_last_enabled_admin_cannot_be_removed(sqlite_server):
    users = sqlite_server.aw.auth.users
    with sqlite_server.client() as c:
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        first = users.by_email("admin@agentwatch.local")
        assert c.put(f"/api/v1/users/{first.id}", headers=admin, json={"disabled": True}).status_code == 200
        root = users.by_email("root@example.com")
        r = c.put(f"/api/v1/users/{root.id}", headers=admin, json={"role": "viewer"})
        assert r.status_code == 409 and "no enabled admin" in r.json()["error"]["message"]
        assert users.get(root.id).role == "admin"  # nothing changed


def test_password_change_ends_other_sessions(sqlite_server):
    with sqlite_server.client() as c:
        here = user_headers(sqlite_server, c, "pw@example.com", "viewer")
        elsewhere = bearer(login(c, "pw@example.com")["access_token"])
        body = {"current_password": "not it at all", "new_password": "a brand new passphrase"}
        r = c.put("/api/v1/users/me/password", headers=here, json=body)
        assert r.status_code == 403 and r.json()["error"]["message"] == "current_password: invalid"
        r = c.put(
            "/api/v1/users/me/password", headers=here, json={**body, "current_password": PASSWORD, "new_password": "x"}
        )
        assert r.status_code == 400 and r.json()["error"]["message"] == "new_password: must be at least 12 characters"
        r = c.put("/api/v1/users/me/password", headers=here, json={**body, "current_password": PASSWORD})
        assert r.status_code == 200 and r.json() == {"changed": True, "other_sessions_ended": 1}
        assert c.get("/api/v1/users/me", headers=here).status_code == 200
        assert c.get("/api/v1/users/me", headers=elsewhere).status_code == 401
        assert c.post("/api/v1/auth/login", json={"email": "pw@example.com", "password": PASSWORD}).status_code == 401
        login(c, "pw@example.com", "a brand new passphrase")


def test_password_change_attempts_are_throttled(tmp_path, sqlite_url):
    from tests.auth.conftest import auth_settings
    from tests.support.server import run_server

    with run_server(auth_settings(tmp_path, sqlite_url, login={"per_account": 2})) as srv, srv.client() as c:
        h = user_headers(srv, c, "pw@example.com", "viewer")
        body = {"current_password": "guess guess guess", "new_password": "a brand new passphrase"}
        codes = [c.put("/api/v1/users/me/password", headers=h, json=body).status_code for _ in range(3)]
        assert codes == [403, 403, 429]
        r = c.put("/api/v1/users/me/password", headers=h, json={**body, "current_password": PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lookup_begun_before_a_role_change_is_not_cached_after_it(auth_server, database_url):
    """A credential lookup still reading when a role change clears the cache must not put the old
    permissions back into it. PostgreSQL's table lock holds the lookup mid-read, for certain."""
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "boss@example.com", "admin")
        user_id = c.get("/api/v1/users/me", headers=admin).json()["id"]
        auth = auth_server.aw.auth
        auth.forget_credentials()
        with psycopg.connect(database_url, autocommit=False) as lock:
            lock.execute("LOCK TABLE auth_users IN ACCESS EXCLUSIVE MODE")
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(c.get, "/api/v1/users/me", headers=admin)
                time.sleep(0.5)  # the lookup is now waiting on the lock
                auth.forget_credentials()  # what a role change, disable or revoke does
                lock.rollback()
                assert pending.result(timeout=30).json()["id"] == user_id
        assert auth._cache == {}  # the principal read before the change was not kept
        assert c.get("/api/v1/users/me", headers=admin).status_code == 200
        assert len(auth._cache) == 1  # a lookup begun after it is cached as usual


def test_deleting_users_keeps_an_enabled_admin_on_both_stores(auth_server):
    """``UserStore.delete`` (behind ``agentwatch users delete``): gone once, False for no such
    account, and never the last enabled admin, on SQLite and PostgreSQL alike."""
    from agentwatch.api.errors import Conflict

    users = auth_server.aw.auth.users
    root = users.create("root@example.com", PASSWORD, "admin")
    for u in users.list():  # the server's first admin: disabled, so "root" is the one enabled admin
        if u.role == "admin" and u.id != root.id:
            users.update(u.id, disabled=True)
    ana = users.create("ana@example.com", PASSWORD, "analyst")
    assert users.delete(ana.id) is not None
    assert users.get(ana.id) is None and users.delete(ana.id) is None
    with pytest.raises(Conflict):
        users.delete(root.id)
    assert users.get(root.id) is not None  # the refusal wrote nothing
    second = users.create("bo@example.com", PASSWORD, "admin")
    assert users.delete(root.id) is not None
    assert [u.email for u in users.list() if u.role == "admin" and not u.disabled] == [second.email]


def test_admin_deletes_a_user_over_the_api_and_their_credentials_stop_at_once(auth_server):
    with auth_server.client() as c:
        admin = user_headers(auth_server, c, "root@example.com", "admin")
        made = c.post("/api/v1/users", headers=admin, json={"email": "gone@example.com", "role": "analyst"}).json()
        token = bearer(login(c, "gone@example.com", made["password"])["access_token"])
        key = c.post("/api/v1/api-keys", headers=token, json={"name": "k", "scopes": ["events:read"]}).json()["key"]
        assert c.get("/api/events", headers={"X-API-Key": key}).status_code == 200
        viewer = user_headers(auth_server, c, "vi@example.com", "viewer")
        assert c.delete(f"/api/v1/users/{made['id']}", headers=viewer).status_code == 403

        r = c.delete(f"/api/v1/users/{made['id']}", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json() == {"deleted": True, "id": made["id"], "sessions_revoked": 1, "keys_revoked": 1}
        assert c.get("/api/v1/users/me", headers=token).status_code == 401
        assert c.get("/api/events", headers={"X-API-Key": key}).status_code == 401
        assert "gone@example.com" not in {u["email"] for u in c.get("/api/v1/users", headers=admin).json()["users"]}
        assert c.delete(f"/api/v1/users/{made['id']}", headers=admin).status_code == 404
        # an analyst cannot be given the power to delete admins: deleting needs their permissions
        me = c.get("/api/v1/users/me", headers=admin).json()["user"]
        for u in c.get("/api/v1/users", headers=admin).json()["users"]:
            if u["role"] == "admin" and u["id"] != me["id"]:
                assert c.put(f"/api/v1/users/{u['id']}", headers=admin, json={"disabled": True}).status_code == 200
        last = c.delete(f"/api/v1/users/{me['id']}", headers=admin)
        assert last.status_code == 409 and "no enabled admin" in last.json()["error"]["message"]
    [entry] = auth_server.aw.audit.query(action="user.delete")
    assert entry["target"] == f"user:{made['id']}" and entry["details"]["email"] == "gone@example.com"
