"""Access to the real services tests need (PostgreSQL, Redis, NATS).

A missing service skips the test on a laptop and fails it when ``CI=true``.
Each test run gets fresh databases / stream names.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
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


def migrated_postgres_database() -> tuple[str, str]:
    """A new PostgreSQL database at the schema's head, copied from this process's template."""
    import psycopg

    require_service("PostgreSQL", "127.0.0.1", 5432)
    template = TEMPLATES.postgres()
    name = f"aw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
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
    url, name = fresh_postgres_database() if blank else migrated_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)
