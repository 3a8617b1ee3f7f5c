"""``agentwatch users create`` and ``agentwatch keys create`` on the configured database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import typer
from typer.testing import CliRunner

from agentwatch.soc.auth.apikeys import ApiKeyStore
from agentwatch.soc.auth.cli import install
from agentwatch.soc.auth.passwords import Passwords
from agentwatch.soc.auth.users import UserStore
from agentwatch.store.engine import make_engine


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def cli(tmp_path: Path, url: str, *args: str, stdin: str | None = None) -> Ran:
    """Run the commands in-process (the real ``agentwatch`` entry point is exercised by
    ``test_audit.py``); the settings come from the environment as they would in a shell."""
    app = typer.Typer()
    install(app)
    env = {"AGENTWATCH_DATABASE_URL": url, "AGENTWATCH_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_users_and_keys_commands(tmp_path: Path, sqlite_url: str):
    made = cli(tmp_path, sqlite_url, "users", "create", "Root@Example.com", "--role", "admin")
    assert made.returncode == 0, made.stderr
    user = orjson.loads(made.stdout)
    assert user["email"] == "root@example.com" and user["role"] == "admin"
    password = made.stderr.split("password (shown once):", 1)[1].split()[0]

    piped = cli(
        tmp_path, sqlite_url, "users", "create", "vi@example.com", "--password-stdin", stdin="a long enough pw\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert "shown once" not in piped.stderr
    short = cli(tmp_path, sqlite_url, "users", "create", "sh@example.com", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "password: must be at least 12 characters" in short.stderr
    again = cli(tmp_path, sqlite_url, "users", "create", "root@example.com", "--role", "admin")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad_role = cli(tmp_path, sqlite_url, "users", "create", "x@example.com", "--role", "wizard")
    assert bad_role.returncode == 2 and "--role: unknown role 'wizard'" in bad_role.stderr

    key = cli(
        tmp_path, sqlite_url, "keys", "create", "--name", "agents", "--scopes", "events:write", "--expires-days", "30"
    )
    assert key.returncode == 0, key.stderr
    plaintext = key.stdout.strip()
    assert plaintext.startswith("aw_")
    escalate = cli(
        tmp_path, sqlite_url, "keys", "create", "--name", "x", "--scopes", "alerts:write", "--user", "vi@example.com"
    )
    assert escalate.returncode == 2 and "beyond the permissions of vi@example.com" in escalate.stderr
    unknown = cli(tmp_path, sqlite_url, "keys", "create", "--name", "x", "--scopes", "events:wrte")
    assert unknown.returncode == 2 and "unknown permission 'events:wrte'" in unknown.stderr

    engine = make_engine(sqlite_url)
    try:
        stored = UserStore(engine).by_email("root@example.com")
        assert stored is not None and Passwords().verify(stored.password_hash, password)
        assert Passwords().verify(UserStore(engine).by_email("vi@example.com").password_hash, "a long enough pw")
        found = ApiKeyStore(engine).lookup(plaintext)
        assert found is not None and found.scopes == ("events:write",) and found.owner_id == stored.id
        assert found.expires_at is not None
    finally:
        engine.dispose()
    reset = cli(tmp_path, sqlite_url, "users", "set-password", "vi@example.com")
    assert reset.returncode == 0, reset.stderr
    new_password = reset.stderr.split("password (shown once):", 1)[1].split()[0]
    engine = make_engine(sqlite_url)
    try:
        assert Passwords().verify(UserStore(engine).by_email("vi@example.com").password_hash, new_password)
    finally:
        engine.dispose()
    assert cli(tmp_path, sqlite_url, "users", "set-password", "nobody@example.com").returncode == 2
    audit = cli(tmp_path, sqlite_url, "audit", "verify")
    assert audit.returncode == 0 and orjson.loads(audit.stdout)["checked"] == 4  # 2 users, 1 key, 1 reset
