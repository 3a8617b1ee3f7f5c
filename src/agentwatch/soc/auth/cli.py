"""``agentwatch users|keys|audit``: work on the database named by the settings, no server needed."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Column, Table

# one line per message, whatever the width; no markup: a message quotes what the user typed
console = Console(stderr=True, soft_wrap=True, markup=False)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print a JSON array on stdout instead of a table")]

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Inspect the audit log.", no_args_is_help=True)


class Stores:
    """The stores of the access layer on the configured database (migrated first)."""

    def __init__(self, config: Path | None) -> None:
        from agentwatch.cli_settings import database_or_exit, schema_or_exit, settings_or_exit
        from agentwatch.soc.audit import AuditLog
        from agentwatch.soc.auth.apikeys import ApiKeyStore
        from agentwatch.soc.auth.passwords import Passwords
        from agentwatch.soc.auth.roles import RoleStore
        from agentwatch.soc.auth.users import UserStore
        from agentwatch.store.engine import make_engine
        from agentwatch.store.migrate import migrate

        self.settings = settings_or_exit(config)
        database_or_exit(self.settings)
        self.engine = make_engine(self.settings.resolved_database_url())
        with schema_or_exit():
            migrate(self.engine)
        self.users = UserStore(self.engine, Passwords(self.settings.auth.password_hash))
        self.roles = RoleStore(self.engine)
        self.keys = ApiKeyStore(self.engine)
        self.audit = AuditLog(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def _fail(message: str, code: int = 2) -> typer.Exit:
    console.print(message, style="red")
    return typer.Exit(code)


def cli_actor() -> dict[str, str]:
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return {"actor_kind": "cli", "actor_id": f"cli:{who}"[:128], "actor_name": who}


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="the user's e-mail address (their login)")],
    role: Annotated[str, typer.Option(help="admin, analyst, viewer, ingest or a custom role")] = "viewer",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    config: ConfigOpt = None,
) -> None:
    """Create a user; without --password-stdin a random password is generated and printed once."""
    from agentwatch.api.errors import ApiError
    from agentwatch.soc.audit import AuditEntry
    from agentwatch.soc.auth.passwords import generate_password

    s = Stores(config)
    try:
        if not s.roles.exists(role):
            raise _fail(f"--role: unknown role {role!r}")
        password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
        try:
            user = s.users.create(email, password, role)
        except ApiError as exc:
            raise _fail(exc.message) from None
        s.audit.append(
            AuditEntry("user.create", **cli_actor(), target=f"user:{user.id}", status=201, details={"role": role})
        )
        typer.echo(orjson.dumps(user.view()).decode())
        if not password_stdin:
            console.print(f"password (shown once): {password}", highlight=False, soft_wrap=True)
    finally:
        s.close()


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    config: ConfigOpt = None,
) -> None:
    """Reset a password (a lost admin password, say); the user's sessions end."""
    from agentwatch.api.errors import ApiError
    from agentwatch.soc.audit import AuditEntry
    from agentwatch.soc.auth.passwords import generate_password
    from agentwatch.soc.auth.tokens import TokenService

    s = Stores(config)
    try:
        user = _existing_user(s, email)
        password = sys.stdin.readline().rstrip("\n") if password_stdin else generate_password()
        try:
            s.users.set_password(user.id, password)
        except ApiError as exc:
            raise _fail(exc.message.replace("new_password", "password")) from None
        TokenService(s.engine, b"unused", 60, 60).revoke_user_sessions(user.id, "password_reset")
        s.audit.append(AuditEntry("user.password_reset", **cli_actor(), target=f"user:{user.id}", status=200))
        if not password_stdin:
            console.print(f"password (shown once): {password}", highlight=False, soft_wrap=True)
    finally:
        s.close()


@users_app.command("delete")
def users_delete(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    config: ConfigOpt = None,
) -> None:
    """Delete a user; their sessions and API keys are revoked. The last enabled admin stays."""
    from agentwatch.api.errors import Conflict
    from agentwatch.soc.audit import AuditEntry

    s = Stores(config)
    try:
        user = _existing_user(s, email)
        last_admin = f"cannot delete {user.email}: the last enabled admin (make another user admin first)"
        if user.role == "admin" and not user.disabled and _enabled_admins(s) == 1:
            raise _fail(last_admin)  # before asking; delete() checks again under a lock
        if not yes and not _confirmed(f"delete user {user.email} (role {user.role}) and revoke their keys?"):
            raise _fail(f"{user.email} not deleted (no confirmation; --yes skips it)", 1)
        try:
            removed = s.users.delete(user.id)
        except Conflict:
            raise _fail(last_admin) from None
        if removed is None:
            raise _fail(f"no user {email!r}")
        details = {"email": user.email, "role": user.role, **dataclasses.asdict(removed)}
        s.audit.append(AuditEntry("user.delete", **cli_actor(), target=f"user:{user.id}", status=200, details=details))
        ended = f"{removed.sessions_revoked} session(s) and {removed.keys_revoked} API key(s) revoked"
        console.print(f"deleted {user.email}: {ended}", highlight=False)
    finally:
        s.close()


def _existing_user(s: Stores, email: str) -> Any:
    """The user with this e-mail address, or exit 2 saying there is none."""
    user = s.users.by_email(email)
    if user is None:
        raise _fail(f"no user {email!r}")
    return user


def _enabled_admins(s: Stores) -> int:
    return sum(1 for u in s.users.list() if u.role == "admin" and not u.disabled)


def _confirmed(question: str) -> bool:
    """The answer to ``question``, asked on stderr (stdout is for what scripts read); only y or
    yes is yes, and no answer at all (a script without --yes) is no."""
    console.print(f"{question} [y/N] ", end="", highlight=False)
    answer = sys.stdin.readline()
    if not sys.stdin.isatty():  # a terminal echoed the newline; piped input did not
        console.print()
    return answer.strip().lower() in ("y", "yes")


@users_app.command("list")
def users_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List users."""
    s = Stores(config)
    try:
        users = s.users.list()
        if as_json:
            typer.echo(orjson.dumps([u.view() for u in users]).decode())
            return
        table = _table("email", "role", "disabled", "last login", whole=("email",))
        for u in users:
            last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(u.last_login_at)) if u.last_login_at else "-"
            table.add_row(u.id, u.email, u.role, str(u.disabled), last)
        Console(markup=False).print(table)  # names and ids are what users and agents sent
    finally:
        s.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="what the key is for")],
    scopes: Annotated[str, typer.Option(help="comma-separated permissions, e.g. events:write,alerts:read")],
    expires_days: Annotated[int | None, typer.Option(min=1, max=3650, help="days until the key expires")] = None,
    user: Annotated[str | None, typer.Option(help="owner's e-mail (default: the first admin)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print it once. Its scopes must be held by its owner."""
    from agentwatch.api.errors import ApiError
    from agentwatch.api.security import Principal
    from agentwatch.soc.audit import AuditEntry

    if not 0 < len(name) <= 128:
        raise _fail("--name: must be 1 to 128 characters")
    wanted = [x.strip() for x in scopes.split(",") if x.strip()]
    if not wanted or len(wanted) > 64:
        raise _fail("--scopes: give 1 to 64 comma-separated permissions")
    s = Stores(config)
    try:
        owner = s.users.by_email(user) if user else s.users.first_admin()
        if owner is None:
            raise _fail(f"--user: no user {user!r}" if user else "no admin user exists yet: create one first")
        try:
            wanted = s.roles.check_permissions(wanted, "--scopes")
        except ApiError as exc:
            raise _fail(exc.message) from None
        holder = Principal("user", owner.id, owner.email, s.roles.permissions_of(owner.role))
        for scope in wanted:
            if not holder.can(scope):
                raise _fail(f"--scopes: {scope!r} is beyond the permissions of {owner.email} (role {owner.role})")
        expires_at = time.time() + expires_days * 86400 if expires_days else None
        key, plaintext = s.keys.create(
            owner_id=owner.id, created_by=cli_actor()["actor_id"], name=name, scopes=wanted, expires_at=expires_at
        )
        s.audit.append(
            AuditEntry(
                "apikey.create", **cli_actor(), target=f"apikey:{key.id}", status=201, details={"scopes": wanted}
            )
        )
        console.print(f"key {key.id} for {owner.email}; shown once:", highlight=False)
        typer.echo(plaintext)
    finally:
        s.close()


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List API keys (never their secrets)."""
    s = Stores(config)
    try:
        keys = s.keys.list()
        if as_json:
            typer.echo(orjson.dumps([k.view() for k in keys]).decode())
            return
        table = _table("prefix", "name", "owner", "scopes", "expires", "last used", "revoked")

        def when(t: float | None) -> str:
            return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else "-"

        for k in keys:
            v = k.view()
            table.add_row(
                k.id,
                v["prefix"],
                k.name,
                k.owner_id,
                ",".join(k.scopes),
                when(k.expires_at),
                when(k.last_used_at),
                when(k.revoked_at),
            )
        Console(markup=False).print(table)  # names and ids are what users and agents sent
    finally:
        s.close()


def _table(*headers: str, whole: tuple[str, ...] = ()) -> Table:
    """An id column then ``headers``. The id (what ``keys revoke`` takes) and the ``whole`` columns
    are never cut short to fit a narrow terminal (or a pipe, 80 columns); ``--json`` has the rest."""
    full = ("id", *whole)
    return Table(*(Column(h, no_wrap=h in full, min_width=36 if h == "id" else None) for h in ("id", *headers)))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")], config: ConfigOpt = None) -> None:
    """Revoke an API key."""
    from agentwatch.soc.audit import AuditEntry

    s = Stores(config)
    try:
        if not s.keys.revoke(key_id):
            raise _fail(f"no active key {key_id!r}", 1)
        s.audit.append(AuditEntry("apikey.revoke", **cli_actor(), target=f"apikey:{key_id}", status=200))
        typer.echo(f"revoked {key_id}")
    finally:
        s.close()


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None) -> None:
    """Walk the hash chain; exit 1 naming the first changed or missing row."""
    s = Stores(config)
    try:
        with console.status("verifying the audit chain"):
            result = s.audit.verify()
        typer.echo(orjson.dumps(result.as_dict()).decode())
        if not result.ok:
            console.print(f"audit log broken at row {result.first_bad_seq}: {result.problem}", style="red")
            raise typer.Exit(1)
        console.print(f"audit log intact: {result.checked} rows, head at {result.head_seq}")
    finally:
        s.close()


def install(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
