"""Turns at SQLite's write lock for the pipeline's commits, across the server's processes.

A SQLite writer that finds the lock taken waits in SQLite's busy handler, which sleeps
1, 2, 5, 10, 15, 20, 25 ... ms between tries whatever happens meanwhile: a commit that
arrives while another process's 1,000-event commit is under way wakes, on average, well
after that commit ended, and with ``serve --processes N`` the processes' commits meet
all the time. Taking a turn here first (an exclusive ``flock`` on a file beside the
database) puts the waiter to sleep in the kernel until the holder lets go, so the next
commit starts as soon as the lock is free. The writers that follow the commits (the trace
indexer, alerts, rule fire counts, UEBA baselines, the telemetry inventory, retention) and
session deletes take turns here too (``turn_of``). SQLite's own lock still decides who
writes; this only orders the writers that take turns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from agentwatch.store.engine import sqlite_file

try:
    import fcntl
except ImportError:  # not on POSIX: the commits wait in SQLite's busy handler, as other writers do
    fcntl = None  # type: ignore[assignment]

SUFFIX = "-writers"


@contextmanager
def writer_turn(database: str) -> Iterator[None]:
    """Hold the turn of the SQLite database at ``database`` (its file ``-writers`` added).

    Each turn opens the file anew: locks on two opens of one file exclude each other, so the
    threads of one process wait for each other as processes do."""
    if fcntl is None:
        yield
        return
    fd = os.open(database + SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # sleeps without the interpreter lock
        yield
    finally:
        os.close(fd)  # which ends the lock


def turn_of(engine: Any) -> AbstractContextManager[None]:
    """The writer turn of ``engine``'s store when it is a SQLite file, else nothing to hold.

    For a writer beside the pipeline whose transaction takes SQLite's write lock every time
    (alerts, rule fire counts, UEBA baselines, the telemetry inventory, retention's pages,
    session deletes): in its turn, a pipeline commit that meets it sleeps until it is done
    instead of in SQLite's busy handler. Never taken inside another turn of the same store: a
    second turn waits for the first."""
    path = sqlite_file(engine)
    return writer_turn(path) if path else nullcontext()
