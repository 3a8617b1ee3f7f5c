"""Engines for SQLite (WAL, the embedded default) and PostgreSQL, and migrations."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from agentwatch.store.checkpoint import BACKSTOP_PAGES, WalCheckpointer


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a file-backed SQLite engine, else None."""
    if not is_sqlite(engine) or engine.url.database in (None, "", ":memory:"):
        return None
    return str(Path(engine.url.database).expanduser())


SQLITE_BUSY_MS = 30_000  # how long a SQLite statement waits for another writer, by default
_SQLITE_BUSY = 5  # SQLITE_BUSY, the primary code of every "database is locked" error


def wait_for_lock(conn: Connection, ms: int) -> None:
    """Set how long ``conn``'s statements wait for another SQLite writer. A setting of the
    connection, not of its transaction, kept until set again (the pool's connections start at
    ``SQLITE_BUSY_MS``); set on the driver's connection, so it neither begins nor ends one."""
    conn.connection.dbapi_connection.execute(f"PRAGMA busy_timeout={int(ms)}")  # type: ignore[union-attr]


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": another writer held the lock longer
    than the statement would wait. Nothing of the statement's transaction was written."""
    orig = getattr(exc, "orig", None) if isinstance(exc, OperationalError) else None
    return orig is not None and getattr(orig, "sqlite_errorcode", 0) & 0xFF == _SQLITE_BUSY


def checkpointer_for(engine: Engine) -> WalCheckpointer | None:
    path = sqlite_file(engine)
    return WalCheckpointer(path) if path else None


WAL_SWITCH_WAIT_S = 30.0


def _switch_to_wal(cur: sqlite3.Cursor) -> None:
    """``PRAGMA journal_mode=WAL`` on a new connection. When another process makes the same
    switch on a new file at that moment, SQLite refuses it at once ("database is locked"),
    whatever the busy timeout: processes starting together on one new file then failed on
    their first connection. The switch is tried again for a while instead."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != _SQLITE_BUSY or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


# The sqlite3 module binds a str, int or float as it is, but offers any other value (None too)
# to its adapters first: with none registered for None, it asks the protocol type and then the
# value for an adapter method, and the first question fails by building an AttributeError and
# its message, for every NULL parameter (about 2,000 machine instructions each; an event row
# binds five or more). An adapter registered for None answers at the first lookup. The adapter
# is a lookup in an empty dict nothing else can reach, which answers None for any key: a call
# of a built-in method costs a fifth of a Python function's.
_null = {}.get
sqlite3.register_adapter(type(None), _null)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # Last in, first out: the pipeline's commits keep reusing one connection, whose page
        # cache and prepared statements are still valid (SQLite keeps both per connection, and
        # drops the page cache when another connection wrote in between).
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_MS / 1000},
            pool_size=8,
            max_overflow=8,
            pool_use_lifo=True,
            hide_parameters=True,  # a failed statement's error must not quote event values
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            _switch_to_wal(cur)
            cur.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run on a background thread (store.checkpoint); this is the backstop.
            cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _text(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        from agentwatch.store import pg_text

        pg_text.install(dbapi_conn)

    return engine
