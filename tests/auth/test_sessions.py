"""Login, refresh rotation with reuse detection, logout, throttling, and bad login input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt

from agentwatch.soc.auth.tokens import ALGORITHM, ISSUER
from tests.auth.conftest import PASSWORD, add_user, auth_settings, bearer, login
from tests.support.server import run_server


def test_login_gives_working_tokens_and_me_describes_the_user(auth_server):
    add_user(auth_server, "Ana@Example.com", "analyst")
    with auth_server.client() as c:
        doc = login(c, "ana@example.com")
        assert doc["token_type"] == "bearer"
        ttl = auth_server.aw.settings.auth
        assert (doc["expires_in"], doc["refresh_expires_in"]) == (ttl.access_ttl_s, ttl.refresh_ttl_s)
        assert doc["refresh_token"].startswith("awr_")
        assert doc["user"]["email"] == "ana@example.com" and doc["user"]["role"] == "analyst"
        assert "password_hash" not in doc["user"]
        me = c.get("/api/v1/users/me", headers=bearer(doc["access_token"]))
        assert me.status_code == 200
        body = me.json()
        assert body["kind"] == "user" and body["user"]["email"] == "ana@example.com"
        assert "alerts:write" in body["permissions"] and "users:admin" not in body["permissions"]
        assert body["user"]["last_login_at"] is not None


def test_unknown_account_and_wrong_password_get_the_same_answer(sqlite_server):
    add_user(sqlite_server, "bo@example.com", "viewer")
    with sqlite_server.client() as c:
        wrong = c.post("/api/v1/auth/login", json={"email": "bo@example.com", "password": "not the password"})
        unknown = c.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "not the password"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()
        assert wrong.json()["error"]["message"] == "email or password: invalid"


def test_refresh_rotates_and_reuse_revokes_the_whole_family(auth_server):
    add_user(auth_server, "cy@example.com", "viewer")
    with auth_server.client() as c:
        first = login(c, "cy@example.com")
        r = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert c.get("/api/v1/users/me", headers=bearer(second["access_token"])).status_code == 200
        # rotate once more: the family now has three tokens, two of them spent
        third = c.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()

        # the first (spent) token comes back: theft is assumed, the family dies
        reuse = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert reuse.status_code == 401
        assert "already used" in reuse.json()["error"]["message"]
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}).status_code == 401
        for doc in (first, second, third):
            assert c.get("/api/v1/users/me", headers=bearer(doc["access_token"])).status_code == 401
        # a fresh login is unaffected
        assert c.get("/api/v1/users/me", headers=bearer(login(c, "cy@example.com")["access_token"])).status_code == 200
    actions = [e["action"] for e in auth_server.aw.audit.query(action="auth.refresh*")]
    assert "auth.refresh.reuse" in actions


def test_logout_revokes_access_and_refresh_tokens_of_that_session_only(auth_server):
    add_user(auth_server, "di@example.com", "viewer")
    with auth_server.client() as c:
        a = login(c, "di@example.com")
        b = login(c, "di@example.com")
        r = c.post("/api/v1/auth/logout", headers=bearer(a["access_token"]))
        assert r.status_code == 200 and r.json() == {"revoked": True}
        assert c.get("/api/v1/users/me", headers=bearer(a["access_token"])).status_code == 401
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": a["refresh_token"]}).status_code == 401
        assert c.get("/api/v1/users/me", headers=bearer(b["access_token"])).status_code == 200
        # logging out with only the refresh token works too
        r = c.post("/api/v1/auth/logout", json={"refresh_token": b["refresh_token"]})
        assert r.status_code == 200
        assert c.get("/api/v1/users/me", headers=bearer(b["access_token"])).status_code == 401
        # and without any credential it is refused
        assert c.post("/api/v1/auth/logout").status_code == 401


def test_login_sets_a_cookie_accepted_only_for_streams(sqlite_server):
    add_user(sqlite_server, "ed@example.com", "viewer")
    with sqlite_server.client() as c:
        login(c, "ed@example.com")
        assert c.cookies.get("aw_access")
        # a plain API call does not authenticate by cookie (no CSRF through cookies)
        assert c.get("/api/v1/users/me").status_code == 401
        # an event-stream request does
        r = c.get("/api/v1/users/me", headers={"Accept": "text/event-stream"})
        assert r.status_code == 200


def test_tampered_and_expired_tokens_are_refused(tmp_path: Path, sqlite_url: str):
    import jwt

    with run_server(auth_settings(tmp_path, sqlite_url, jwt_secret="s" * 32)) as srv:
        uid = add_user(srv, "fy@example.com", "viewer")
        with srv.client() as c:
            doc = login(c, "fy@example.com")
            sid = jwt.decode(doc["access_token"], "s" * 32, algorithms=["HS256"])["sid"]
            forged = jwt.encode(
                {"iss": "agentwatch", "sub": uid, "sid": sid, "iat": 1, "exp": 4e9, "typ": "access"},
                "other-key-other-key-other-key-32",
                algorithm="HS256",
            )
            r = c.get("/api/v1/users/me", headers=bearer(forged))
            assert r.status_code == 401 and r.json()["error"]["message"] == "token: invalid"
            expired = jwt.encode(
                {"iss": "agentwatch", "sub": uid, "sid": sid, "iat": 1, "exp": 2, "typ": "access"},
                "s" * 32,
                algorithm="HS256",
            )
            r = c.get("/api/v1/users/me", headers=bearer(expired))
            assert r.status_code == 401 and r.json()["error"]["message"] == "token: expired"
            none_alg = jwt.encode(
                {"iss": "agentwatch", "sub": uid, "sid": sid, "iat": 1, "exp": 4e9}, None, algorithm="none"
            )
            assert c.get("/api/v1/users/me", headers=bearer(none_alg)).status_code == 401
            assert c.get("/api/v1/users/me", headers={"Authorization": "Basic eDp5"}).status_code == 401


def test_login_throttled_per_account_with_the_same_answer_for_unknown_accounts(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, login={"per_account": 3, "per_address": 100})
    with run_server(settings) as srv:
        add_user(srv, "gu@example.com", "viewer")
        with srv.client() as c:
            answers = {}
            for email in ("gu@example.com", "ghost@example.com"):
                for _ in range(3):
                    r = c.post("/api/v1/auth/login", json={"email": email, "password": "wrong password"})
                    assert r.status_code == 401
                r = c.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
                answers[email] = r
            known, unknown = answers["gu@example.com"], answers["ghost@example.com"]
            assert known.status_code == unknown.status_code == 429
            assert known.json() == unknown.json()
            assert "too many failed attempts" in known.json()["error"]["message"]
            assert 0 < int(known.headers["retry-after"]) <= 900
            # another account from the same address is not locked by these
            add_user(srv, "ha@example.com", "viewer")
            login(c, "ha@example.com")
        throttled = srv.aw.audit.query(action="auth.login.throttled")
        assert len(throttled) == 2


def test_login_throttled_per_address(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, login={"per_account": 100, "per_address": 4})
    with run_server(settings) as srv:
        add_user(srv, "ix@example.com", "viewer")
        with srv.client() as c:
            for i in range(4):
                r = c.post("/api/v1/auth/login", json={"email": f"u{i}@example.com", "password": "wrong password"})
                assert r.status_code == 401
            r = c.post("/api/v1/auth/login", json={"email": "ix@example.com", "password": PASSWORD})
            assert r.status_code == 429


BAD_LOGIN_BODIES = [
    (b"{not json", "body: malformed JSON"),
    (b"[]", "body"),
    (b"", "body: a JSON object is required"),
    (b'{"email": "a@b.c"}', "password: Field required"),
    (b'{"email": "a@b.c", "password": "x", "admin": true}', "admin: Extra inputs are not permitted"),
    (b'{"email": 5, "password": "x"}', "email: Input should be a valid string"),
    (b'{"email": "' + b"a" * 400 + b'@b.c", "password": "x"}', "email: String should have at most 320"),
    (b'{"email": "a@b.c", "password": "' + b"p" * 2000 + b'"}', "password: String should have at most 1024"),
    (b'{"email": "not-an-address", "password": "x"}', "email: must be an e-mail address"),
]


def test_bad_login_bodies_get_400_naming_the_field(sqlite_server):
    with sqlite_server.client() as c:
        for body, field in BAD_LOGIN_BODIES:
            r = c.post("/api/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith(field), r.json()


def test_oversized_login_body_is_413(sqlite_server):
    with sqlite_server.client() as c:
        r = c.post("/api/v1/auth/login", content=b"{" + b" " * 20000 + b"}")
        assert r.status_code == 413
        assert r.json()["error"]["message"].startswith("body: larger than")


def test_bad_refresh_input(sqlite_server):
    with sqlite_server.client() as c:
        assert c.post("/api/v1/auth/refresh", json={"refresh_token": "awr_nope"}).status_code == 401
        r = c.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 300})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("refresh_token: String should have")
        r = c.post("/api/v1/auth/refresh", json={})
        assert r.status_code == 400 and r.json()["error"]["message"] == "refresh_token: Field required"


def test_first_start_creates_an_admin_and_prints_its_password_once(tmp_path: Path, sqlite_url: str, capfd):
    settings = auth_settings(tmp_path, sqlite_url)
    with run_server(settings) as srv:
        err = capfd.readouterr().err
        lines = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in err.splitlines() if ":" in ln)}
        email, password = lines["email"], lines["password"]
        assert email == "admin@agentwatch.local" and len(password) >= 20
        with srv.client() as c:
            me = c.get("/api/v1/users/me", headers=bearer(login(c, email, password)["access_token"])).json()
            assert me["user"]["role"] == "admin"
    with run_server(settings):  # second start: nothing created, nothing printed
        assert "password" not in capfd.readouterr().err


def test_a_signed_token_with_odd_ids_is_refused_not_an_outage(auth_server):
    """Claims this server never issues (a lone surrogate, a number, 10 KB) answer 401, never 503."""
    tokens = auth_server.aw.auth.tokens
    now = int(time.time())
    with auth_server.client() as c:
        for sub in ["\ud800", 12345, "x" * 10_000]:
            claims = {"iss": ISSUER, "sub": sub, "sid": "s", "iat": now, "exp": now + 60, "typ": "access"}
            token = jwt.encode(claims, tokens._secret, algorithm=ALGORITHM)
            r = c.get("/api/v1/users/me", headers=bearer(token))
            assert r.status_code == 401, (repr(sub)[:20], r.text)
        r = c.get("/api/v1/users/me", headers={"X-API-Key": "aw_\xe9\xe9".encode("latin-1")})
        assert r.status_code == 401 and "printable ASCII" in r.json()["error"]["message"]


def test_token_lifetimes_count_from_issue_not_from_when_the_answer_is_written(sqlite_server):
    """Under load the answer was built more than the access token's truncated fraction of a
    second after issue, and ``expires_in`` came out one short of the configured lifetime."""
    from agentwatch.api.auth import tokens_response

    user_id = add_user(sqlite_server, "late@example.com", "viewer")
    svc = sqlite_server.aw.auth
    ttl = sqlite_server.aw.settings.auth
    issued = svc.tokens.start_session(user_id, "test")
    time.sleep(1.1)  # a busy server writing the answer late
    user = svc.users.get(user_id)
    assert user is not None
    body = json.loads(tokens_response(issued, user, ttl.access_ttl_s).body)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["expires_in"] == claims["exp"] - claims["iat"] == ttl.access_ttl_s
    assert body["refresh_expires_in"] == ttl.refresh_ttl_s
