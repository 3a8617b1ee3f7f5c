"""Access to the real services tests need (PostgreSQL, Redis, NATS).

A missing service skips the test on a laptop and fails it when ``CI=true``.
Each test run gets fresh databases / stream names.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = os.environ.get("AGENTWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AGENTWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("AGENTWATCH_TEST_NATS", "nats://127.0.0.1:4222")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if in_ci():
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


def fresh_postgres_database() -> tuple[str, str]:
    """Create a new database; returns (url, name)."""
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = f"aw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Templates:
    """One store at the schema's head per test process and backend, migrated once; every test
    database is a copy of it, so a test does not pay for the whole migration chain (0.2 s on
    SQLite, 0.4 s on PostgreSQL on the CI machine) before it starts.

    The copy is what ``migrate`` would have made: a server started on it finds the schema up
    to date and changes nothing. Tests of the migrations themselves ask for a blank database.
    """

    def __init__(self) -> None:
        self._sqlite: Path | None = None
        self._postgres: str | None = None

    def sqlite(self) -> Path:
        if self._sqlite is None:
            import tempfile

            from agentwatch.store.engine import make_engine
            from agentwatch.store.migrate import migrate

            path = Path(tempfile.mkdtemp(prefix="aw-template-")) / "agentwatch.db"
            engine = make_engine(f"sqlite:///{path}")
            migrate(engine)
            with engine.connect() as conn:  # everything into the main file: the copy is that file
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            engine.dispose()
            self._sqlite = path
        return self._sqlite

    def postgres(self) -> str:
        if self._postgres is None:
            from agentwatch.store.engine import make_engine
            from agentwatch.store.migrate import migrate

            url, name = fresh_postgres_database()
            engine = make_engine(url)
            migrate(engine)
            engine.dispose()  # a template may have no connection open while it is copied
            atexit.register(drop_postgres_database, name)
            self._postgres = name
        return self._postgres


TEMPLATES = _Templates()


def _copy_of(template: str) -> str:
    import psycopg

    name = f"aw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


class _Copies:
    """PostgreSQL databases copied from the template before a test asks, and dropped after it
    ends, on a thread of their own: creating and dropping a database each wait for the server's
    disk (0.1 s to over 1 s apiece on a busy CI machine), and a test no longer waits for either.
    At most ``AHEAD`` copies wait ready; the drops asked for are all done before the process ends."""

    AHEAD = 2

    def __init__(self) -> None:
        self._ready: list[str] = []
        self._drops: list[str] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def take(self, template: str) -> str:
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(template,), name="pg-copies", daemon=True)
                self._thread.start()
                atexit.register(self.close)
            ready = self._ready.pop(0) if self._ready else None
            self._wake.notify()
        return ready if ready is not None else _copy_of(template)

    def drop(self, name: str) -> None:
        with self._wake:
            if self._thread is None or self._closing:
                drop_postgres_database(name)
                return
            self._drops.append(name)
            self._wake.notify()

    def _run(self, template: str) -> None:
        while True:
            with self._wake:
                while not self._drops and (len(self._ready) >= self.AHEAD or self._closing):
                    if self._closing:
                        return
                    self._wake.wait()
                drop = self._drops.pop(0) if self._drops else None
            try:
                if drop is not None:
                    drop_postgres_database(drop)
                else:
                    made = _copy_of(template)
                    with self._wake:
                        self._ready.append(made)
            except Exception:  # the server is away: a drop is tried again (at the latest by close)
                if drop is not None:
                    with self._wake:
                        self._drops.append(drop)
                time.sleep(0.5)

    def close(self) -> None:
        """Drop what is ready and what was left to drop, then end the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=60)
        for name in self._ready + self._drops:
            drop_postgres_database(name)
        self._ready, self._drops = [], []


COPIES = _Copies()


def migrated_postgres_database() -> tuple[str, str]:
    """A new PostgreSQL database at the schema's head, copied from this process's template."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = COPIES.take(TEMPLATES.postgres())
    return f"postgresql://postgres@127.0.0.1:5432/{name}", name


def database_for(kind: str, directory: Path, *, blank: bool = False) -> Iterator[str]:
    """A database URL for one test or one module: SQLite in ``directory``, or a fresh
    PostgreSQL database dropped afterwards (``kind`` is "sqlite" or "postgresql").

    The database is at the schema's head already (a copy of a migrated one); ``blank`` gives
    an empty one instead, for tests of the migrations themselves."""
    if kind == "sqlite":
        path = directory / "agentwatch.db"
        if not blank:
            shutil.copyfile(TEMPLATES.sqlite(), path)
        yield f"sqlite:///{path}"
        return
    if blank:
        url, name = fresh_postgres_database()
        try:
            yield url
        finally:
            drop_postgres_database(name)
        return
    url, name = migrated_postgres_database()
    try:
        yield url
    finally:
        COPIES.drop(name)
