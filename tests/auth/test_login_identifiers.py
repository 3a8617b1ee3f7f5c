"""What is kept of the identifier typed at login: the e-mail and user id when it names an
account, else only its keyed hash and length (people type their password there)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select

from agentwatch.soc.audit import AuditLog
from agentwatch.soc.auth_schema import attempts
from tests.auth.conftest import PASSWORD, add_user, auth_settings, bearer, login
from tests.auth.test_audit import all_rows_text
from tests.support.server import run_server

# passwords typed into the e-mail field (each passes the e-mail shape check: one "@", no space)
TYPED_PASSWORD = "Tr0ub4dor&3@xkcd!"
OTHER_TYPED = "s3cret-Passw0rd@home"
WRONG = "wrong password 123"


def fail_login(c, email: str, password: str = WRONG) -> int:
    return c.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code


def details_of(log: AuditLog, action: str) -> list[dict]:
    return [row["details"] for row in sorted(log.query(action=action, limit=100), key=lambda r: r["seq"])]


def plain_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def assert_not_kept(text: str, *typed: str) -> None:
    for value in typed:
        assert value.lower() not in text.lower(), value
        assert plain_sha256(value.lower()) not in text, value  # a dictionary reverses a plain hash


def test_an_unknown_identifier_is_kept_only_as_its_keyed_hash_and_length(auth_server):
    with auth_server.client() as c:
        assert [fail_login(c, e) for e in (TYPED_PASSWORD, OTHER_TYPED, TYPED_PASSWORD)] == [401, 401, 401]
    failures = details_of(auth_server.aw.audit, "auth.login.failure")
    assert [set(d) for d in failures] == [{"email_hmac", "email_length"}] * 3
    first, other, again = failures
    assert first == again  # repeated attempts with one identifier can be correlated
    assert first["email_hmac"] != other["email_hmac"]
    assert len(first["email_hmac"]) == 64 and first["email_length"] == len(TYPED_PASSWORD)
    assert other["email_length"] == len(OTHER_TYPED)
    assert_not_kept(all_rows_text(auth_server.aw.engine), TYPED_PASSWORD, OTHER_TYPED)


def test_a_known_accounts_failure_keeps_its_email_and_user_id(auth_server):
    user_id = add_user(auth_server, "ana@example.com", "analyst")
    with auth_server.client() as c:
        assert fail_login(c, "Ana@Example.com") == 401
    assert details_of(auth_server.aw.audit, "auth.login.failure") == [{"email": "ana@example.com", "user_id": user_id}]


def test_the_hash_is_keyed_by_the_servers_secret(tmp_path: Path, sqlite_url: str):
    """Two deployments with different secrets hash one identifier differently, and neither
    hash is the plain SHA-256 of it: only the key holder can test a guess."""
    seen = []
    for i, secret in enumerate(("a" * 32, "b" * 32)):
        settings = auth_settings(tmp_path / str(i), sqlite_url.replace(".db", f"{i}.db"), jwt_secret=secret)
        with run_server(settings) as srv, srv.client() as c:
            assert fail_login(c, TYPED_PASSWORD) == 401
            seen.append(details_of(srv.aw.audit, "auth.login.failure")[0]["email_hmac"])
    assert seen[0] != seen[1]
    assert plain_sha256(TYPED_PASSWORD.lower()) not in seen


def test_throttled_logins_follow_the_same_rule(tmp_path: Path, database_url: str):
    settings = auth_settings(tmp_path, database_url, login={"per_account": 2, "per_address": 100})
    with run_server(settings) as srv:
        user_id = add_user(srv, "gu@example.com", "viewer")
        with srv.client() as c:
            assert [fail_login(c, TYPED_PASSWORD) for _ in range(3)] == [401, 401, 429]
            assert [fail_login(c, "gu@example.com") for _ in range(3)] == [401, 401, 429]
        throttled = details_of(srv.aw.audit, "auth.login.throttled")
        failure = details_of(srv.aw.audit, "auth.login.failure")[0]
        assert throttled == [failure, {"email": "gu@example.com", "user_id": user_id}]
        assert set(failure) == {"email_hmac", "email_length"}
        assert_not_kept(all_rows_text(srv.aw.engine), TYPED_PASSWORD)


def test_failed_logins_and_password_rechecks_share_the_accounts_budget(tmp_path: Path, sqlite_url: str):
    with run_server(auth_settings(tmp_path, sqlite_url, login={"per_account": 3})) as srv, srv.client() as c:
        add_user(srv, "pw@example.com", "viewer")
        h = bearer(login(c, "pw@example.com")["access_token"])
        assert [fail_login(c, "pw@example.com") for _ in range(2)] == [401, 401]
        body = {"current_password": "guess guess guess", "new_password": "a brand new passphrase"}
        assert c.put("/api/v1/users/me/password", headers=h, json=body).status_code == 403
        assert fail_login(c, "pw@example.com", PASSWORD) == 429  # the re-check spent the last attempt


def test_budget_key_names_carry_the_keyed_hash_not_the_identifier(tmp_path: Path, database_url: str):
    """The sign-in budgets are rows of the store (``auth_attempts``), named after what they count."""
    settings = auth_settings(tmp_path, database_url)
    with run_server(settings) as srv, srv.client() as c:
        assert fail_login(c, TYPED_PASSWORD) == 401
        with srv.aw.engine.connect() as conn:
            names = list(conn.execute(select(attempts.c.key)).scalars())
        assert_not_kept("\n".join(names), TYPED_PASSWORD)
        assert_not_kept("\n".join(names), plain_sha256(TYPED_PASSWORD))
        hashed = details_of(srv.aw.audit, "auth.login.failure")[0]["email_hmac"]
    assert "login:acct:" + hashed in names  # the account's budget is still counted
