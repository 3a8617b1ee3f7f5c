"""Schema migrations: Alembic brought to every head, one process at a time, all or nothing.

Every node and every command that opens the store migrates it first, so processes starting
together on one database are normal (a scale-out deployment's nodes, a restart). A store
already at every head is only read. Otherwise the upgrade runs under a lock (PostgreSQL: a
session advisory lock; SQLite: a lock file beside the database and ``BEGIN IMMEDIATE``) in one
transaction, so the processes after the first find nothing left to do and a failed upgrade
leaves the schema as it was. A store this program must not migrate (at a revision it does not
know, or with agentwatch's table names but no record of a migration) is refused untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from agentwatch.store.engine import SQLITE_BUSY_MS, is_locked, is_sqlite, sqlite_file, wait_for_lock

try:
    import fcntl
except ImportError:  # not on POSIX: SQLite's own write lock alone keeps migrations apart
    fcntl = None  # type: ignore[assignment]


def alembic_config(engine: Engine, connection: Connection | None = None) -> Config:
    """Alembic's settings for ``engine``; with ``connection``, env.py migrates on it (in its
    transaction, under the lock its caller holds) instead of opening its own."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("agentwatch.store").joinpath("migrations")))
    cfg.attributes["engine"] = engine
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


MIGRATION_LOCK_WAIT_S = 60.0  # how long a start-up waits for another process's migration
# The PostgreSQL advisory lock held while migrating: the bytes of "agentwat", one fixed key so
# that every agentwatch process on a database takes the same lock (locks are per database).
PG_MIGRATION_LOCK = int.from_bytes(b"agentwat", "big")
_PG_LOCK_NOT_AVAILABLE = "55P03"  # the SQLSTATE of a wait cut off by lock_timeout


class SchemaError(RuntimeError):
    """The store's schema cannot be brought to this program's revisions; the message says why
    and what to do (the command line shows it and exits 2)."""


def migrate(engine: Engine, lock_wait_s: float = MIGRATION_LOCK_WAIT_S) -> None:
    """Bring the schema to every head (each capability keeps its own branch).

    A store already at every head is only read: nodes restarting under load take no lock and
    write nothing. Otherwise the store is looked at again, and upgraded, under the migration
    lock (``migration_connection``): processes starting together on one fresh database take
    turns, and the ones after the first find nothing left to do. (Only under the lock is what
    it reads one consistent state; outside, another process may be half way through.)"""
    script = ScriptDirectory.from_config(alembic_config(engine))
    with _sqlite_lock_file(engine, lock_wait_s):
        with engine.connect() as conn:
            if _revisions(conn) == set(script.get_heads()):
                return
        with _locked_connection(engine, lock_wait_s) as conn:
            current = _revisions(conn)
            _refuse_unmigratable(conn, script, current)
            if current != set(script.get_heads()):
                command.upgrade(alembic_config(engine, conn), "heads")


@contextmanager
def _sqlite_lock_file(engine: Engine, wait_s: float) -> Iterator[None]:
    """Processes starting on one SQLite file take turns from their first connection on: that
    connection switches a new file to WAL, and SQLite refuses that switch ("database is
    locked") without waiting when another process is making it at the same moment. The lock
    is on a file beside the database, so no reader or writer of the database waits for it."""
    path = sqlite_file(engine)
    if path is None or fcntl is None:
        yield
        return
    with open(path + ".migrate-lock", "a") as handle:
        deadline = time.monotonic() + wait_s
        while not _try_flock(handle):
            if time.monotonic() >= deadline:
                raise _lock_timeout(engine, wait_s, f"another agentwatch is migrating it (lock file {handle.name})")
            time.sleep(0.05)
        yield  # closing the file lets the lock go


def _try_flock(handle) -> bool:  # type: ignore[no-untyped-def]
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def migration_connection(engine: Engine, lock_wait_s: float = MIGRATION_LOCK_WAIT_S) -> Iterator[Connection]:
    """A connection in one transaction that holds the store's migration lock until the block
    ends (committed on a clean exit, rolled back on an error, so a failed or interrupted
    migration leaves the schema as it was). Every Alembic command agentwatch runs is inside
    one; ``migrate`` takes the same locks in two steps."""
    with _sqlite_lock_file(engine, lock_wait_s), _locked_connection(engine, lock_wait_s) as conn:
        yield conn


@contextmanager
def _locked_connection(engine: Engine, lock_wait_s: float) -> Iterator[Connection]:
    """PostgreSQL: a session advisory lock on this very connection, around its transaction.
    SQLite: the database's write lock (``BEGIN IMMEDIATE``), which also makes the DDL part of
    the transaction; the driver would otherwise run each CREATE outside any."""
    lock = _sqlite_write_lock if is_sqlite(engine) else _pg_migration_lock
    with engine.connect() as conn, lock(conn, lock_wait_s):
        yield conn


@contextmanager
def _sqlite_write_lock(conn: Connection, wait_s: float) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` waiting at most ``wait_s`` for another writer; the connection's usual
    wait is put back before it returns to the pool."""
    wait_for_lock(conn, int(wait_s * 1000))
    try:
        with conn.begin():
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except OperationalError as exc:
                if is_locked(exc):
                    raise _lock_timeout(conn.engine, wait_s, "another process is writing to it") from None
                raise
            wait_for_lock(conn, SQLITE_BUSY_MS)
            yield
    finally:
        wait_for_lock(conn, SQLITE_BUSY_MS)


@contextmanager
def _pg_migration_lock(conn: Connection, wait_s: float) -> Iterator[None]:
    """The advisory lock, waited for at most ``wait_s`` (lock_timeout, set for that one
    statement's transaction so the migration's own statements keep the server's setting)."""
    conn.execute(select(func.set_config("lock_timeout", f"{int(wait_s * 1000)}ms", True)))
    try:
        conn.execute(select(func.pg_advisory_lock(PG_MIGRATION_LOCK)))
    except OperationalError as exc:
        conn.rollback()
        if getattr(exc.orig, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE:
            raise _lock_timeout(conn.engine, wait_s, _pg_lock_holder(conn)) from None
        raise
    try:
        conn.commit()  # ends lock_timeout's transaction; the session keeps the lock
        with conn.begin():
            yield
    finally:
        _pg_unlock(conn)


def _pg_unlock(conn: Connection) -> None:
    """Release the advisory lock before the connection goes back to the pool, where it would
    otherwise keep it. A connection that cannot even do that is dropped, and its session's
    locks end with it."""
    try:
        conn.execute(select(func.pg_advisory_unlock(PG_MIGRATION_LOCK)))
        conn.commit()
    except DBAPIError:
        conn.invalidate()


def _pg_lock_holder(conn: Connection) -> str:
    """Who holds the migration lock, for the error that gives up waiting for it."""
    row = conn.execute(
        text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = :hi AND objid = :lo AND objsubid = 1"
        ),
        {"hi": PG_MIGRATION_LOCK >> 32, "lo": PG_MIGRATION_LOCK & 0xFFFFFFFF},
    ).first()
    conn.rollback()
    holder = f"PostgreSQL backend pid {row[0]}" if row else "a process that has since let go"
    return f"another agentwatch is migrating it ({holder})"


def _lock_timeout(engine: Engine, wait_s: float, why: str) -> SchemaError:
    return SchemaError(
        f"database {_shown(engine)}: could not take the schema migration lock within {wait_s:g} s: {why}. "
        "Start this process again once that has finished."
    )


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _revisions(conn: Connection) -> set[str]:
    """The revisions the store records (none for a store never migrated); reads only."""
    return set(MigrationContext.configure(conn).get_current_heads())


def _refuse_unmigratable(conn: Connection, script: ScriptDirectory, current: set[str]) -> None:
    """Refuse (``SchemaError``) a store this program must not migrate: one at a revision it does
    not know, or one with tables named like agentwatch's but no record of a migration."""
    unknown = current - {rev.revision for rev in script.walk_revisions()}
    if unknown:
        raise _unknown_revisions(conn, sorted(unknown))
    if not current:
        _refuse_foreign_tables(conn)


def _unknown_revisions(conn: Connection, revisions: list[str]) -> SchemaError:
    from agentwatch import __version__

    named = ", ".join(repr(r) for r in revisions)
    if set(inspect(conn).get_table_names()) & agentwatch_tables():
        why = (
            f"this agentwatch ({__version__}) does not know it: the database is newer than this "
            "program, migrated by a later agentwatch. Run that version (or a later one) against it; "
            "this one changed nothing"
        )
    else:
        why = "it holds no agentwatch tables, so its alembic_version is another program's; nothing was changed"
    return SchemaError(f"database {_shown(conn.engine)} is at schema revision {named}: {why}")


def _refuse_foreign_tables(conn: Connection) -> None:
    present = set(inspect(conn).get_table_names())
    clash = sorted(present & agentwatch_tables()) if present else []
    if clash:
        raise SchemaError(
            f"database {_shown(conn.engine)} is not agentwatch's: it has tables named like agentwatch's "
            f"({', '.join(clash)}) but no alembic_version recording a migration. Point database_url "
            "at an empty database or at one agentwatch created; nothing was changed."
        )


@cache
def agentwatch_tables() -> frozenset[str]:
    """The names of every table the revisions create, read from an empty in-memory SQLite
    database migrated to every head (so a new revision's tables are counted without a list to
    keep in step)."""
    memory = create_engine("sqlite://")
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)  # this scratch run is no migration of the store
    try:
        with memory.begin() as conn:
            command.upgrade(alembic_config(memory, conn), "heads")
            return frozenset(inspect(conn).get_table_names()) - {"alembic_version"}
    finally:
        alembic_log.setLevel(level)
        memory.dispose()
