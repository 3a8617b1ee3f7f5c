"""``agentwatch users delete``: the account goes, its sessions and API keys stop working, the audit
log says who did it; the last enabled admin stays; an unknown address is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from agentwatch.soc.audit import AuditLog
from agentwatch.soc.auth.apikeys import ApiKeyStore
from agentwatch.soc.auth.tokens import TokenService
from agentwatch.soc.auth.users import UserStore
from agentwatch.store.engine import make_engine
from tests.cli.test_cli_hunt import run


def _emails(tmp_path: Path) -> list[str]:
    listed = run(["users", "list", "--json"], tmp_path)
    assert listed.code == 0, listed.stderr
    return [u["email"] for u in json.loads(listed.stdout)]


def test_delete_removes_the_user_and_revokes_their_sessions_and_keys(tmp_path):
    assert run(["users", "create", "root@example.com", "--role", "admin"], tmp_path).code == 0
    made = run(["users", "create", "ana@example.com", "--role", "analyst"], tmp_path)
    assert made.code == 0, made.stderr
    ana = json.loads(made.stdout)["id"]
    key = run(["keys", "create", "--name", "ana's", "--scopes", "events:read", "--user", "ana@example.com"], tmp_path)
    assert key.code == 0, key.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'agentwatch.db'}")
    try:
        tokens = TokenService(engine, b"k" * 32, 60, 600)
        session = tokens.start_session(ana, "127.0.0.1")

        deleted = run(["users", "delete", "ANA@example.com", "--yes"], tmp_path)
        assert deleted.code == 0, deleted.stderr
        assert "deleted ana@example.com" in deleted.stderr
        assert _emails(tmp_path) == ["root@example.com"]
        assert UserStore(engine).get(ana) is None
        [revoked] = ApiKeyStore(engine).list(owner_id=ana)
        assert revoked.revoked_at is not None
        assert ApiKeyStore(engine).lookup(key.stdout.strip()).revoked_at is not None
        assert not tokens.revoke_session(session.session_id, "again")  # already ended
        [entry] = AuditLog(engine).query(action="user.delete")
        assert entry["target"] == f"user:{ana}" and entry["actor"]["kind"] == "cli"
        assert entry["details"]["email"] == "ana@example.com"
    finally:
        engine.dispose()
    assert run(["audit", "verify"], tmp_path).code == 0


def test_delete_asks_first_unless_yes(tmp_path):
    assert run(["users", "create", "root@example.com", "--role", "admin"], tmp_path).code == 0
    assert run(["users", "create", "bo@example.com"], tmp_path).code == 0
    kept = run(["users", "delete", "bo@example.com"], tmp_path, stdin=b"n\n")
    assert kept.code == 1 and "not deleted" in kept.stderr and kept.stdout == ""
    assert _emails(tmp_path) == ["root@example.com", "bo@example.com"]
    no_answer = run(["users", "delete", "bo@example.com"], tmp_path, stdin=b"")  # a script without --yes
    assert no_answer.code == 1 and "not deleted" in no_answer.stderr
    confirmed = run(["users", "delete", "bo@example.com"], tmp_path, stdin=b"y\n")
    assert confirmed.code == 0, confirmed.stderr
    assert _emails(tmp_path) == ["root@example.com"]


def test_delete_refuses_the_last_enabled_admin_and_names_an_unknown_user(tmp_path):
    assert run(["users", "create", "root@example.com", "--role", "admin"], tmp_path).code == 0
    last = run(["users", "delete", "root@example.com", "--yes"], tmp_path)
    assert last.code == 2 and "last enabled admin" in last.stderr
    assert len(last.stderr.strip().splitlines()) == 1
    assert _emails(tmp_path) == ["root@example.com"]
    missing = run(["users", "delete", "nobody@example.com", "--yes"], tmp_path)
    assert missing.code == 2 and "no user 'nobody@example.com'" in missing.stderr

    assert run(["users", "create", "second@example.com", "--role", "admin"], tmp_path).code == 0
    assert run(["users", "delete", "root@example.com", "--yes"], tmp_path).code == 0
    assert _emails(tmp_path) == ["second@example.com"]
