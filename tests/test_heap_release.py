"""A stopped server hands its frozen heap back to the garbage collector.

A server freezes the heap alive when it starts (``agentwatch.runtime.settle_heap``). A process
that runs servers one after another must not keep, frozen for good, the reference cycles alive
at a later start: the test suite grew to gigabytes per worker that way."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from tests.support.server import open_settings, run_server
from tests.support.services import database_for


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_stopped_server_leaves_nothing_frozen_and_old_cycles_are_collected(tmp_path: Path) -> None:
    url = next(database_for("sqlite", tmp_path))
    gc.collect()
    garbage = _Cycle()

    gone = weakref.ref(garbage)
    del garbage  # a cycle: only the collector frees it
    gc.disable()  # so that it is still alive when the server freezes the heap at start
    try:
        with run_server(open_settings(tmp_path, url)):
            gc.enable()
            assert gc.get_freeze_count() > 0  # the running server froze the heap, the cycle with it
            gc.collect()
            assert gone() is not None  # frozen: out of the collector's reach while the server runs
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone() is None
