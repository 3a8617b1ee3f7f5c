"""Shared fixtures: settings per database backend, and a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server
from tests.support.services import drop_postgres_database, fresh_postgres_database

SHARED = Path(__file__).resolve().parents[2] / "shared"
OISP_EXAMPLES = SHARED / "data" / "oisp-spec" / "examples"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs once on SQLite and once on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'agentwatch.db'}"
        return
    url, name = fresh_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, auth={"enabled": False})


@pytest.fixture
def server(settings: Settings) -> Iterator[RunningServer]:
    with run_server(settings) as srv:
        yield srv
