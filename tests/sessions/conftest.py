"""A server shared by the tests of one module (for the many small bad-input cases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, module_database_url: str
) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("aop")
    aop = getattr(request.module, "SHARED_AOP", {})  # a module may tune the collector for its tests
    settings = Settings(data_dir=tmp, database_url=module_database_url, auth={"enabled": False}, aop=aop)
    with run_server(settings) as srv:
        yield srv
