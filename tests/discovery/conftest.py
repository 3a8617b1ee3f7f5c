"""The mock fleet (agents and decoys on 127.0.0.2-24), started once for the discovery tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentwatch.detect import atr
from agentwatch.discovery.settings import DiscoverySettings
from tests.discovery import mocks
from tests.discovery.servers import serve


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mocks.Fleet]:
    # Scans run against short timeouts. A server started by a test compiles the bundled ATR rules
    # (seconds of CPU under the GIL) in the background, which would starve the mocks and the scanner
    # during the scan; the compiled set is shared by the whole process, so build it once up front.
    atr.bundled_matcher()
    f = mocks.fleet(Path(tmp_path_factory.mktemp("fleet")))
    with serve(f.specs):
        yield f


def fast_settings(**extra: object) -> DiscoverySettings:
    """The mocks' ports only, so a scan of the fleet takes about a second. No mock keeps a probe
    waiting, so the timeouts only bound a loaded machine: they are several times what a probe
    took there (with 0.5 s to connect and 2 s to read, a CI run on a slow machine lost two mocks
    and one confirmation, in a scan that took 14 s instead of one)."""
    base: dict[str, object] = {
        "ports": mocks.PORTS,
        "connect_timeout": 2.0,
        "read_timeout": 6.0,
        "banner_timeout": 0.5,
        "notify_allow_private": True,
    }
    return DiscoverySettings(**{**base, **extra})
