"""Defects found in a review of the access layer: each test names the behaviour it pins."""

from __future__ import annotations

import base64
import contextlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import event

from agentwatch.api.errors import Conflict
from agentwatch.soc.audit import AuditEntry, AuditLog
from agentwatch.soc.auth.limits import MemoryCounter, RedisCounter
from agentwatch.soc.auth.users import UserStore
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.auth.conftest import PASSWORD, add_user, auth_settings, bearer, login
from tests.support.server import run_server
from tests.support.services import REDIS_URL, require_service


def test_a_nul_in_an_audited_value_does_not_break_the_chain(database_url: str):
    # PostgreSQL stores NUL as U+FFFD (store.pg_text): the hash must be over what is stored.
    engine = make_engine(database_url)
    migrate(engine)
    log = AuditLog(engine)
    log.append(AuditEntry("POST /api/v1/users/{user_id}", target="/api/v1/users/a\x00b", actor_name="x\x00"))
    log.append(AuditEntry("auth.login", status=200))
    assert log.verify().ok, log.verify().as_dict()
    (newest, first) = log.query(limit=2)
    assert first["target"] == "/api/v1/users/a\ufffdb" and first["actor"]["name"] == "x\ufffd"
    engine.dispose()


def test_a_request_path_with_nul_is_audited_without_a_false_tamper_alarm(auth_server):
    add_user(auth_server, "root@example.com", "admin")
    with auth_server.client() as c:
        h = bearer(login(c, "root@example.com")["access_token"])
        assert c.put("/api/v1/users/a%00b").status_code == 401  # anonymous, audited as refused
        r = c.get("/api/v1/audit/verify", headers=h)
        assert r.status_code == 200 and r.json()["ok"] is True, r.json()


def test_concurrent_wrong_passwords_cannot_outrun_the_per_account_limit(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, login={"per_account": 3, "per_address": 1000})
    with run_server(settings) as srv:
        add_user(srv, "target@example.com", "viewer")

        def attempt(i: int) -> int:
            with srv.client() as c:
                body = {"email": "target@example.com", "password": f"guess number {i:04d}"}
                return c.post("/api/v1/auth/login", json=body).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(attempt, range(32)))
        assert statuses.count(401) <= 3, statuses
        assert set(statuses) <= {401, 429}
        with srv.client() as c:  # the right password is refused too while the account is throttled
            r = c.post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
            assert r.status_code == 429


def test_a_successful_login_does_not_use_up_the_address_budget(tmp_path: Path, sqlite_url: str):
    settings = auth_settings(tmp_path, sqlite_url, login={"per_account": 100, "per_address": 2})
    with run_server(settings) as srv:
        add_user(srv, "often@example.com", "viewer")
        with srv.client() as c:
            for _ in range(5):
                login(c, "often@example.com")


def test_emails_with_control_characters_are_refused_naming_the_field(sqlite_server):
    add_user(sqlite_server, "boss@example.com", "admin")
    with sqlite_server.client() as c:
        h = bearer(login(c, "boss@example.com")["access_token"])
        for email in ("a\x00b@example.com", "a\x07b@example.com", "ab@exam\x7fple.com"):
            r = c.post("/api/v1/users", headers=h, json={"email": email, "role": "viewer"})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["message"].startswith("email: "), r.json()


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_released_hit_gives_back_one_attempt_and_never_goes_below_zero(backend: str):
    if backend == "redis":
        require_service("Redis", "127.0.0.1", 6379)
        counter = RedisCounter(REDIS_URL, f"awtest:{uuid.uuid4().hex}:")
    else:
        counter = MemoryCounter()
    try:
        first = await counter.hit("k", 2, 3600)
        await counter.hit("k", 2, 3600)
        assert not (await counter.peek("k", 2, 3600)).allowed
        await counter.release("k", 3600, first.reset_at)
        assert (await counter.peek("k", 2, 3600)).remaining == 1
        await counter.release("k", 3600, first.reset_at)
        await counter.release("k", 3600, first.reset_at)
        await counter.release("never-hit", 3600, first.reset_at)
        assert (await counter.peek("k", 2, 3600)).remaining == 2
        assert (await counter.peek("never-hit", 2, 3600)).remaining == 2
        await counter.release("k", 3600, first.reset_at - 3600)  # an earlier window: nothing to give back
        assert (await counter.hit("k", 2, 3600)).remaining == 1
    finally:
        await counter.close()


def test_two_admins_disabling_each_other_at_once_leave_one_enabled_admin(database_url: str):
    engine = make_engine(database_url)
    migrate(engine)
    store = UserStore(engine)
    a = store.create("a@example.com", PASSWORD, "admin")
    b = store.create("b@example.com", PASSWORD, "admin")
    # Both changes reach their "is an admin left?" count before either commits, when the
    # database lets them (a timeout lets a change go on when the other one has to wait).
    meet = threading.Barrier(2, timeout=3)

    def at_count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if "count(" in statement.lower() and threading.current_thread().name.startswith("flip"):
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()

    event.listen(engine, "before_cursor_execute", at_count)
    outcomes: dict[str, str] = {}

    def flip(user_id: str) -> None:
        try:
            store.update(user_id, disabled=True)
            outcomes[user_id] = "disabled"
        except Conflict:
            outcomes[user_id] = "refused"

    threads = [threading.Thread(target=flip, args=(u.id,), name=f"flip-{u.email}") for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    event.remove(engine, "before_cursor_execute", at_count)
    assert sorted(outcomes.values()) == ["disabled", "refused"], outcomes
    assert [u.email for u in store.list() if u.role == "admin" and not u.disabled] != []
    engine.dispose()


def test_audit_cursor_and_times_out_of_range_get_400_naming_the_parameter(sqlite_server):
    def cursor(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    add_user(sqlite_server, "reader@example.com", "admin")
    with sqlite_server.client() as c:
        h = bearer(login(c, "reader@example.com")["access_token"])
        bad = {
            "cursor": [cursor("audit:" + "9" * 40), cursor("audit:-5"), cursor("audit:1_0")],
            "since": ["nan", "inf", "1e400"],
            "until": ["-inf"],
        }
        for name, values in bad.items():
            for value in values:
                r = c.get("/api/v1/audit", params={name: value}, headers=h)
                assert r.status_code == 400, (name, value, r.text)
                assert r.json()["error"]["message"].startswith(f"{name}: "), r.json()
        assert c.get("/api/v1/audit", params={"cursor": cursor("audit:3")}, headers=h).status_code == 200
