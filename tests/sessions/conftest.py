"""A server shared by the tests of one module (for the many small bad-input cases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server
from tests.support.services import drop_postgres_database, fresh_postgres_database


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("aop")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'agentwatch.db'}"
    else:
        url, name = fresh_postgres_database()
    aop = getattr(request.module, "SHARED_AOP", {})  # a module may tune the collector for its tests
    try:
        with run_server(Settings(data_dir=tmp, database_url=url, auth={"enabled": False}, aop=aop)) as srv:
            yield srv
    finally:
        if name is not None:
            drop_postgres_database(name)
