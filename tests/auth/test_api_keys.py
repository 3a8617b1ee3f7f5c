"""API keys: shown once, stored hashed, scoped, never wider than their creator, expiring."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from agentwatch.soc.auth_schema import api_keys
from tests.auth.conftest import bearer, user_headers


def test_key_is_shown_once_stored_hashed_and_works_in_both_headers(auth_server):
    with auth_server.client() as c:
        h = user_headers(auth_server, c, "ana@example.com", "analyst")
        r = c.post("/api/v1/api-keys", headers=h, json={"name": "ci", "scopes": ["events:read", "alerts:read"]})
        assert r.status_code == 201, r.text
        created = r.json()
        key = created["key"]
        assert key.startswith(created["prefix"] + "_") and created["scopes"] == ["alerts:read", "events:read"]
        assert created["last_used_at"] is None

        with auth_server.aw.engine.connect() as conn:
            row = conn.execute(select(api_keys)).one()._mapping
        secret = key.split("_", 2)[2]
        assert secret not in str(dict(row)) and row["secret_hash"] != secret

        listed = c.get("/api/v1/api-keys", headers=h).json()["keys"]
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0] and "secret_hash" not in listed[0]

        assert c.get("/api/events", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/api/events", headers=bearer(key)).status_code == 200
        assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 403  # not in its scopes

        used = c.get("/api/v1/api-keys", headers=h).json()["keys"][0]
        assert used["last_used_at"] is not None and abs(used["last_used_at"] - time.time()) < 60
        assert used["last_used_from"] == "127.0.0.1"


def test_scope_escalation_is_refused(auth_server):
    with auth_server.client() as c:
        h = user_headers(auth_server, c, "vi@example.com", "viewer")
        for scopes in (["admin"], ["events:read", "alerts:write"], ["users:admin"]):
            r = c.post("/api/v1/api-keys", headers=h, json={"name": "x", "scopes": scopes})
            assert r.status_code == 403, r.text
            assert "beyond your own permissions" in r.json()["error"]["message"]
        # a key cannot mint a wider key either
        key = c.post("/api/v1/api-keys", headers=h, json={"name": "k", "scopes": ["account", "events:read"]}).json()
        r = c.post("/api/v1/api-keys", headers={"X-API-Key": key["key"]}, json={"name": "y", "scopes": ["alerts:read"]})
        assert r.status_code == 403
        r = c.post("/api/v1/api-keys", headers={"X-API-Key": key["key"]}, json={"name": "y", "scopes": ["events:read"]})
        assert r.status_code == 201
        assert len(c.get("/api/v1/api-keys", headers=h).json()["keys"]) == 2
    refused = auth_server.aw.audit.query(action="apikey.escalation_refused")
    assert len(refused) == 4


def test_key_shrinks_with_its_owner(sqlite_server):
    """Effective rights are scopes intersected with the owner's current role."""
    from agentwatch.soc.auth_schema import users

    with sqlite_server.client() as c:
        h = user_headers(sqlite_server, c, "an@example.com", "analyst")
        key = c.post("/api/v1/api-keys", headers=h, json={"name": "k", "scopes": ["alerts:write", "events:read"]})
        key = key.json()["key"]
        assert "alerts:write" in c.get("/api/v1/users/me", headers=bearer(h["Authorization"][7:])).json()["permissions"]
        with sqlite_server.aw.engine.begin() as conn:
            conn.execute(update(users).where(users.c.email == "an@example.com").values(role="ingest"))
        sqlite_server.aw.auth.forget_credentials()
        assert c.get("/api/events", headers={"X-API-Key": key}).status_code == 403


def test_expired_and_revoked_keys_are_refused(auth_server):
    with auth_server.client() as c:
        h = user_headers(auth_server, c, "ex@example.com", "analyst")
        made = c.post("/api/v1/api-keys", headers=h, json={"name": "k", "scopes": ["events:read"], "expires_days": 1})
        made = made.json()
        assert 86000 < made["expires_at"] - time.time() <= 86400
        with auth_server.aw.engine.begin() as conn:
            conn.execute(update(api_keys).where(api_keys.c.id == made["id"]).values(expires_at=time.time() - 1))
        r = c.get("/api/events", headers={"X-API-Key": made["key"]})
        assert r.status_code == 401 and r.json()["error"]["message"] == "api key: expired"

        other = c.post("/api/v1/api-keys", headers=h, json={"name": "k2", "scopes": ["events:read"]}).json()
        assert c.get("/api/events", headers={"X-API-Key": other["key"]}).status_code == 200
        assert c.delete(f"/api/v1/api-keys/{other['id']}", headers=h).json() == {"id": other["id"], "revoked": True}
        r = c.get("/api/events", headers={"X-API-Key": other["key"]})
        assert r.status_code == 401 and r.json()["error"]["message"] == "api key: revoked"
        # a wrong secret with a real prefix is simply invalid
        forged = other["key"][:-4] + "AAAA"
        assert c.get("/api/events", headers={"X-API-Key": forged}).json()["error"]["message"] == "api key: invalid"


def test_users_cannot_see_or_revoke_each_others_keys(sqlite_server):
    with sqlite_server.client() as c:
        a = user_headers(sqlite_server, c, "a@example.com", "analyst")
        b = user_headers(sqlite_server, c, "b@example.com", "analyst")
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        ka = c.post("/api/v1/api-keys", headers=a, json={"name": "a", "scopes": ["events:read"]}).json()
        assert c.get("/api/v1/api-keys", headers=b).json()["keys"] == []
        assert c.delete(f"/api/v1/api-keys/{ka['id']}", headers=b).status_code == 404
        assert c.get("/api/v1/api-keys?all=true", headers=b).status_code == 403
        assert [k["id"] for k in c.get("/api/v1/api-keys?all=true", headers=admin).json()["keys"]] == [ka["id"]]
        assert c.delete(f"/api/v1/api-keys/{ka['id']}", headers=admin).status_code == 200


def test_ingest_service_key_can_only_send_events(sqlite_server):
    with sqlite_server.client() as c:
        admin = user_headers(sqlite_server, c, "root@example.com", "admin")
        uid = sqlite_server.aw.auth.users.create("svc@example.com", "correct horse battery staple", "ingest").id
        key, plain = sqlite_server.aw.auth.keys.create(
            owner_id=uid, created_by="test", name="agent", scopes=["events:write"], expires_at=None
        )
        ev = {"event_type": "process.exec", "process": {"pid": 1, "name": "x"}, "data": {"exe": "/bin/x"}}
        assert c.post("/api/v1/ingest", json=ev, headers={"X-API-Key": plain}).status_code == 200
        assert c.post("/api/v1/ingest", json=ev).status_code == 401
        for path in ("/api/events", "/api/v1/users/me", "/api/v1/api-keys"):
            assert c.get(path, headers={"X-API-Key": plain}).status_code == 403
        assert c.get("/api/events", headers=admin).json()["total"] == 1


BAD_KEY_REQUESTS = [
    ({"name": "k", "scopes": ["events:reed"]}, "scopes[0]: unknown permission 'events:reed'"),
    ({"name": "k", "scopes": []}, "scopes: List should have at least 1 item"),
    ({"name": "", "scopes": ["events:read"]}, "name: String should have at least 1 character"),
    ({"name": "k" * 129, "scopes": ["events:read"]}, "name: String should have at most 128 characters"),
    ({"name": "k", "scopes": ["x" * 65]}, "scopes.0: String should have at most 64 characters"),
    ({"name": "k", "scopes": ["events:read"] * 65}, "scopes: List should have at most 64 items"),
    ({"name": "k", "scopes": ["events:read"], "expires_days": 0}, "expires_days: Input should be greater"),
    ({"name": "k", "scopes": ["events:read"], "owner": "x"}, "owner: Extra inputs are not permitted"),
]


def test_bad_key_requests_name_the_field(sqlite_server):
    with sqlite_server.client() as c:
        h = user_headers(sqlite_server, c, "ana@example.com", "analyst")
        for body, message in BAD_KEY_REQUESTS:
            r = c.post("/api/v1/api-keys", headers=h, json=body)
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith(message), r.json()
