"""The mock fleet (agents and decoys on 127.0.0.2-24), started once for the discovery tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.discovery.settings import DiscoverySettings
from tests.discovery import mocks
from tests.discovery.servers import serve


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mocks.Fleet]:
    f = mocks.fleet(Path(tmp_path_factory.mktemp("fleet")))
    with serve(f.specs):
        yield f


def fast_settings(**extra: object) -> DiscoverySettings:
    """Short timeouts and the mocks' ports only, so a scan of the fleet takes about a second."""
    base: dict[str, object] = {
        "ports": mocks.PORTS,
        "connect_timeout": 0.5,
        "read_timeout": 2.0,
        "banner_timeout": 0.2,
        "notify_allow_private": True,
    }
    return DiscoverySettings(**{**base, **extra})
