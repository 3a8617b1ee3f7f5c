"""Servers started one after another keep only the last few stopped ones alive.

A stopped server's objects (its components, matchers, pools, and the memory of the C libraries
they hold) are reference cycles: only the garbage collector frees them. A server freezes the
heap alive when it starts (``agentwatch.runtime.settle_heap``), and the next server's start
froze them again before the collector had looked at them: a process starting servers one after
another (the test suite) kept every stopped one, some 16 MB each, until the end."""

from __future__ import annotations

import weakref
from pathlib import Path

from agentwatch.runtime import STOPS_PER_COLLECTION
from tests.support.server import open_settings, run_server
from tests.support.services import database_for


def test_servers_started_one_after_another_keep_fewer_stopped_ones_alive_than_a_collection_waits_for(
    tmp_path: Path,
) -> None:
    url = next(database_for("sqlite", tmp_path))
    stopped: list[weakref.ref] = []
    alive_at_each_start = []
    for _ in range(STOPS_PER_COLLECTION + 2):
        with run_server(open_settings(tmp_path, url)) as srv:
            alive_at_each_start.append(sum(ref() is not None for ref in stopped))
            stopped.append(weakref.ref(srv.aw))
        del srv
    assert max(alive_at_each_start) < STOPS_PER_COLLECTION, alive_at_each_start
