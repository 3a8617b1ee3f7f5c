"""Access to the real services tests need (PostgreSQL, Redis, NATS).

A missing service skips the test on a laptop and fails it when ``CI=true``.
Each test run gets fresh databases / stream names.
"""

from __future__ import annotations

import os
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


def database_for(kind: str, directory: Path) -> Iterator[str]:
    """A database URL for one test or one module: SQLite in ``directory``, or a fresh
    PostgreSQL database dropped afterwards (``kind`` is "sqlite" or "postgresql")."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'agentwatch.db'}"
        return
    url, name = fresh_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)
