"""Fixtures of the cases tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentwatch.config import Settings
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with its real store and no authentication, per module and store."""
    base = Settings(data_dir=tmp_path_factory.mktemp("data"), database_url=module_database_url, auth={"enabled": False})
    with run_server(base) as s:
        yield s
