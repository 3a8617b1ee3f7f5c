"""The audit log: what is recorded, how it is queried, and that tampering is detected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import typer
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from agentwatch.soc.audit import AuditEntry, AuditLog
from agentwatch.soc.auth.cli import install
from agentwatch.soc.auth_schema import audit_head, audit_log
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate
from tests.auth.conftest import PASSWORD, add_user, bearer, login


def all_rows_text(engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log)).all()
    return orjson.dumps([{str(k): v for k, v in r._mapping.items()} for r in rows]).decode()


def test_mutations_and_auth_events_are_audited_with_actor_and_outcome_never_secrets(auth_server):
    add_user(auth_server, "ana@example.com", "analyst")
    with auth_server.client() as c:
        doc = login(c, "ana@example.com")
        h = bearer(doc["access_token"])
        made = c.post("/api/v1/api-keys", headers=h, json={"name": "k", "scopes": ["events:read"]}).json()
        assert c.post("/api/v1/rbac/roles", headers=h, json={"name": "x", "permissions": []}).status_code == 403
        c.post("/api/v1/auth/login", json={"email": "ana@example.com", "password": "wrong password 123"})
        c.get("/api/events", headers={"X-API-Key": made["key"][:-2] + "zz"})  # a forged key
        assert c.delete(f"/api/v1/api-keys/{made['id']}", headers=h).status_code == 200

    log = auth_server.aw.audit
    rows = log.query(limit=100)
    by_action: dict[str, list[dict]] = {}
    for row in rows:
        by_action.setdefault(row["action"], []).append(row)
    assert by_action["auth.login"][0]["actor"]["name"] == "ana@example.com"
    assert by_action["auth.login.failure"][0]["details"] == {"email": "ana@example.com", "user_id": doc["user"]["id"]}
    created = by_action["POST /api/v1/api-keys"][0]
    assert created["actor"] == {"kind": "user", "id": doc["user"]["id"], "name": "ana@example.com"}
    assert created["status"] == 201 and created["client"] == "127.0.0.1"
    refused = by_action["POST /api/v1/rbac/roles"][0]
    assert refused["status"] == 403 and refused["actor"]["name"] == "ana@example.com"
    assert by_action["DELETE /api/v1/api-keys/{key_id}"][0]["target"] == f"/api/v1/api-keys/{made['id']}"
    assert by_action["auth.credential_rejected"][0]["details"] == {"reason": "api key: invalid"}
    assert {"apikey.create", "apikey.revoke", "auth.login.failure"} <= set(by_action)
    # GETs are not audited; secrets never are
    assert not any(a.startswith("GET ") for a in by_action)
    text = all_rows_text(auth_server.aw.engine)
    for secret in (PASSWORD, "wrong password 123", doc["access_token"], doc["refresh_token"], made["key"]):
        assert secret not in text
    assert made["key"].split("_", 2)[2][:20] not in text
    assert log.verify().ok


def test_each_ingest_request_is_audited_once_with_its_outcome(sqlite_server):
    auth = sqlite_server.aw.auth
    admin = auth.users.create("ingest@example.com", PASSWORD, "admin")
    made, key = auth.keys.create(owner_id=admin.id, created_by="t", name="k", scopes=["admin"], expires_at=None)
    key_id = made.id
    ev = {"event_type": "process.exec", "process": {"pid": 1, "name": "x"}, "data": {"exe": "/bin/x"}}
    aop = {
        "spec": "aop/1.0",
        "session_id": "audited",
        "agent_id": "a",
        "sequence": 1,
        "timestamp": "2026-04-03T10:00:00Z",
        "type": "session.started",
        "payload": {"goal": "g"},
    }
    with sqlite_server.client(headers={"X-API-Key": key}) as c:
        assert c.post("/api/v1/ingest", json=[ev, ev]).status_code == 200
        assert c.post("/events", json=aop).status_code == 200
        assert c.post("/events", json=aop).json()["duplicate"] is True  # nothing new stored: still audited
        assert c.post("/events", json={**aop, "sequence": "one"}).status_code == 400  # refused at intake
    rows = sqlite_server.aw.audit.query(limit=100)
    mine = [
        (r["action"], r["status"], r["actor"]["id"])
        for r in rows
        if r["action"] in ("POST /api/v1/ingest", "POST /events")
    ]
    assert sorted(mine) == sorted(
        [("POST /api/v1/ingest", 200, key_id), ("POST /events", 200, key_id), ("POST /events", 200, key_id)]
        + [("POST /events", 400, key_id)]
    )
    assert sqlite_server.aw.audit.verify().ok


def test_audit_route_filters_and_pages(sqlite_server):
    log = sqlite_server.aw.audit
    base = time.time() - 1000
    log.append_many(
        [
            AuditEntry(f"test.{'even' if i % 2 == 0 else 'odd'}", "user", f"u{i % 3}", f"user{i % 3}", ts=base + i)
            for i in range(30)
        ]
    )
    with sqlite_server.client() as c:
        h = bearer(login(c, *_admin(sqlite_server))["access_token"])
        seen, cursor = [], None
        while True:
            params = {"action": "test.*", "limit": 7, **({"cursor": cursor} if cursor else {})}
            page = c.get("/api/v1/audit", headers=h, params=params).json()
            seen += [e["seq"] for e in page["entries"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 30 and seen == sorted(seen, reverse=True) and len(set(seen)) == 30
        odd = c.get("/api/v1/audit", headers=h, params={"action": "test.odd", "limit": 100}).json()["entries"]
        assert len(odd) == 15 and {e["action"] for e in odd} == {"test.odd"}
        mine = c.get("/api/v1/audit", headers=h, params={"actor": "user1", "action": "test.*"}).json()["entries"]
        assert len(mine) == 10 and {e["actor"]["id"] for e in mine} == {"u1"}
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 20))
        window = c.get("/api/v1/audit", headers=h, params={"since": since, "until": base + 24.5, "action": "test.*"})
        assert sorted(e["ts"] - base for e in window.json()["entries"]) == [20, 21, 22, 23, 24]
        for params, message in [
            ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
            ({"limit": 5000}, "limit: Input should be less than or equal to 1000"),
            ({"since": "yesterday"}, "since: must be epoch seconds or an RFC 3339 timestamp"),
            ({"cursor": "garbage!"}, "cursor: not a cursor returned by this endpoint"),
            ({"actor": "a" * 400}, "actor: String should have at most 320 characters"),
        ]:
            r = c.get("/api/v1/audit", headers=h, params=params)
            assert r.status_code == 400 and r.json()["error"]["message"] == message, r.text
        assert c.get("/api/v1/audit/verify", headers=h).json()["ok"] is True


def _admin(srv) -> tuple[str, str]:
    add_user(srv, "auditor@example.com", "admin")
    return "auditor@example.com", PASSWORD


def _filled_log(url: str) -> AuditLog:
    engine = make_engine(url)
    migrate(engine)
    log = AuditLog(engine)
    for i in range(10):
        log.append(AuditEntry(f"test.{i}", "user", "u1", "user one", target=f"/thing/{i}", status=200))
    assert log.verify().ok and log.verify().checked == 10
    return log


TAMPERING = {
    "edit": (lambda t: update(t).where(t.c.seq == 5).values(actor_name="someone else"), 5, "row 5: content changed"),
    "delete": (lambda t: delete(t).where(t.c.seq == 4), 4, "row 4 missing (deleted)"),
    "truncate": (lambda t: delete(t).where(t.c.seq >= 8), 8, "row 8-10 missing (log truncated)"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_tampering_is_detected_by_the_library(database_url: str, kind: str):
    log = _filled_log(database_url)
    stmt, bad, problem = TAMPERING[kind]
    with log.engine.begin() as conn:
        conn.execute(stmt(audit_log))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == bad and result.problem == problem
    log.engine.dispose()


async def test_entries_recorded_over_successive_loop_turns_share_one_transaction(database_url: str):
    import asyncio

    from sqlalchemy import event

    engine = make_engine(database_url)
    migrate(engine)
    log = AuditLog(engine)
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))

    async def late(turns: int) -> None:
        for _ in range(turns):  # a response still on its way through the app
            await asyncio.sleep(0)
        await log.record(AuditEntry("POST /events", status=200))

    await asyncio.gather(*(late(i) for i in range(6)))
    assert len(commits) == 1
    assert log.verify().ok and log.verify().checked == 6
    log.engine.dispose()


def test_rewriting_a_row_with_a_fresh_hash_still_breaks_the_chain(sqlite_url: str):
    from agentwatch.soc.audit import row_hash

    log = _filled_log(sqlite_url)
    with log.engine.begin() as conn:
        row = dict(conn.execute(select(audit_log).where(audit_log.c.seq == 3)).one()._mapping)
        row["action"] = "nothing.happened"
        row["hash"] = row_hash(row)
        conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(action=row["action"], hash=row["hash"]))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "prev_hash" in (result.problem or "")


def _cli(tmp_path: Path, url: str, *args: str, in_process: bool = False) -> subprocess.CompletedProcess[str]:
    """The ``agentwatch`` command: a real process, or in-process (faster) through typer's runner."""
    env = {"AGENTWATCH_DATABASE_URL": url, "AGENTWATCH_DATA_DIR": str(tmp_path)}
    if in_process:
        app = typer.Typer()
        install(app)
        r = CliRunner().invoke(app, list(args), env=env)
        return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)
    return subprocess.run(
        [sys.executable, "-m", "agentwatch.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_audit_verify_command_reports_the_first_broken_row(tmp_path: Path, sqlite_url: str):
    log = _filled_log(sqlite_url)
    ok = _cli(tmp_path, sqlite_url, "audit", "verify", in_process=True)
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["ok"] is True
    for kind in ("truncate", "edit", "delete"):  # each makes an earlier row the first bad one
        stmt, bad, problem = TAMPERING[kind]
        with log.engine.begin() as conn:
            conn.execute(stmt(audit_log))
        broken = _cli(tmp_path, sqlite_url, "audit", "verify", in_process=kind != "delete")
        assert broken.returncode == 1, (kind, broken.stdout, broken.stderr)
        doc = orjson.loads(broken.stdout)
        assert doc["first_bad_seq"] == bad and doc["problem"] == problem
        assert f"broken at row {bad}" in broken.stderr
    with log.engine.begin() as conn:
        conn.execute(delete(audit_head))
    assert log.verify().problem == "row 4 missing (deleted)"  # still the first problem
    log.engine.dispose()


def test_head_row_loss_is_detected_and_appends_refuse(sqlite_url: str):
    from agentwatch.soc.audit import AuditError

    log = _filled_log(sqlite_url)
    with log.engine.begin() as conn:
        conn.execute(delete(audit_head))
    result = log.verify()
    assert not result.ok and result.problem == "head row missing"
    with pytest.raises(AuditError):
        log.append(AuditEntry("test.after"))
    log.engine.dispose()


def test_a_mutation_is_not_acknowledged_when_its_audit_row_cannot_be_written(sqlite_server):
    auth = sqlite_server.aw.auth
    admin = auth.users.create("root@example.com", PASSWORD, "admin")
    _, key = auth.keys.create(owner_id=admin.id, created_by="t", name="k", scopes=["admin"], expires_at=None)
    with sqlite_server.aw.engine.begin() as conn:
        conn.execute(delete(audit_head))  # appends now refuse: the log was tampered with
    ev = {"event_type": "process.exec", "process": {"pid": 1, "name": "x"}, "data": {"exe": "/bin/x"}}
    with sqlite_server.client(headers={"X-API-Key": key}) as c:
        for method, path, body in [
            ("POST", "/api/v1/ingest", ev),
            ("POST", "/api/v1/rbac/permissions", {"name": "a:b"}),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert r.json()["error"]["message"].startswith("audit: the audit log cannot be written")
            assert r.headers["retry-after"]
        assert c.get("/api/events").json()["total"] == 0  # refused whole: its events were not stored
        assert c.get("/api/events").status_code == 200  # reads carry on


def test_a_streamed_post_is_audited_without_being_buffered(tmp_path: Path, sqlite_url: str):
    """An LLM stream through the gateway is a POST: its audit row is written at the first
    chunk and the rest is relayed as it comes (the fake provider streams in pauses)."""
    from tests.auth.conftest import auth_settings
    from tests.capture.fake_upstream import OPENAI_TEXT_STREAM, fake_upstream
    from tests.support.server import run_server

    with fake_upstream("127.0.0.3") as upstream:
        settings = auth_settings(tmp_path, sqlite_url)
        capture = {
            "allow_loopback_upstreams": True,
            "routes": {"openai": {"provider": "openai", "base_url": upstream.url}},
        }
        settings = settings.model_copy(update={"capture": type(settings.capture).model_validate(capture)})
        with run_server(settings) as srv:
            admin = srv.aw.auth.users.create("root@example.com", PASSWORD, "admin")
            _, key = srv.aw.auth.keys.create(
                owner_id=admin.id, created_by="t", name="k", scopes=["gateway:use"], expires_at=None
            )
            body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            headers = {"X-Agentwatch-Key": key, "Authorization": "Bearer sk-provider-key-not-ours"}
            with (
                srv.client() as c,
                c.stream("POST", "/gateway/openai/v1/chat/completions", json=body, headers=headers) as r,
            ):
                chunks = list(r.iter_raw())
            assert r.status_code == 200
            assert b"".join(chunks) == b"".join(OPENAI_TEXT_STREAM) and len(chunks) > 1
            rows = srv.aw.audit.query(action="POST /gateway/*")
            assert len(rows) == 1 and rows[0]["status"] == 200
            assert rows[0]["actor"]["kind"] == "api_key" and rows[0]["target"] == "/gateway/openai/v1/chat/completions"
            assert "sk-provider-key-not-ours" not in all_rows_text(srv.aw.engine)
            # the provider's key was not taken for an agentwatch credential
            assert srv.aw.audit.query(action="auth.credential_rejected") == []


def test_concurrent_writers_keep_one_unbroken_chain(database_url: str):
    """Writers in several threads (or processes: the lock is the database's) serialize on the
    head row, so seqs stay gap-free and every row chains to the one before."""
    from concurrent.futures import ThreadPoolExecutor

    engine = make_engine(database_url)
    migrate(engine)
    logs = [AuditLog(engine) for _ in range(4)]  # separate writers, as separate processes would be

    def write(i: int) -> None:
        for j in range(20):
            logs[i].append_many([AuditEntry(f"w{i}.{j}"), AuditEntry(f"w{i}.{j}b")])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    result = logs[0].verify()
    assert result.ok and result.checked == 160 and result.head_seq == 160
    engine.dispose()


@pytest.mark.parametrize("path", ["/api/v1/ingest", "/events", "/v1/traces", "/api/v1/auth/login"])
def test_a_client_gone_mid_body_is_audited_as_refused_not_as_a_server_error(sqlite_server, path):
    host, port = sqlite_server.url.removeprefix("http://").split(":")
    add_user(sqlite_server, "writer@example.com", "admin")
    with sqlite_server.client() as c:
        token = login(c, "writer@example.com")["access_token"]
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    log = sqlite_server.aw.audit

    def rows() -> list[dict]:
        return [r for r in log.query(limit=100) if r["target"] == path]

    before = len(rows())  # the login above is one
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head.encode() + b'{"event_type": "proc')  # then hangs up
    deadline = time.monotonic() + 10
    while len(rows()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["status"] for r in rows()[: len(rows()) - before]] == [400]
