"""The schedule of a node whose peer died mid-run (SQLite and PostgreSQL): the dead node's lease
expires, and the hunt runs at the next tick after that, not an interval later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from agentwatch.hunts import store
from agentwatch.hunts.schedule import HuntSchedule
from tests.hunts.helpers import definition, hunt_settings, write
from tests.support.server import RunningServer, run_server


@pytest.fixture(scope="module")
def srv(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("hunts")
    write(folder, "daily.yml", definition("daily", schedule="1d"))
    # the server's own schedule stays off: the node under test is made below
    settings = hunt_settings(tmp_path_factory.mktemp("data"), module_database_url, folder, enabled=False)
    with run_server(settings) as s:
        yield s


def test_a_hunt_held_by_a_node_that_died_runs_once_its_lease_expired(srv: RunningServer) -> None:
    engine = srv.aw.engine
    assert store.take_lease(engine, "daily", "dead-node", 1.0)  # died mid-run, before storing it
    node = HuntSchedule(srv.aw)

    async def ticks() -> None:
        await node.tick()  # the lease is held: this node is turned away
        await asyncio.gather(*node._running.values())
        await asyncio.sleep(1.2)  # the dead node's lease expires
        await node.tick()
        await asyncio.gather(*node._running.values())

    started = time.time()
    asyncio.run(ticks())
    runs = store.history(engine, "daily", 10)
    assert [r["trigger"] for r in runs] == ["schedule"]  # once, by this node, within seconds
    assert time.time() - started < 10
