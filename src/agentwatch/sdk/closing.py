"""Closing every open transport as the process ends, so nothing accepted is left only in memory.

At interpreter exit, and at the end of a ``multiprocessing`` child (which ends with
``os._exit()`` and so skips the interpreter's exit hooks), every transport not closed yet is
closed: all of them at once, within the longest of their close deadlines, so the exit never
hangs.
"""

from __future__ import annotations

import atexit
import contextlib
import time
import weakref
from typing import Protocol

from agentwatch.sdk import forking


class Closable(Protocol):
    timeout: float

    def wake_up(self) -> None: ...

    def close(self, timeout: float | None = None) -> None: ...


_OPEN: weakref.WeakSet[Closable] = weakref.WeakSet()


def track(transport: Closable) -> None:
    """Close ``transport`` as the process ends, unless it is closed before."""
    _OPEN.add(transport)


def untrack(transport: Closable) -> None:
    _OPEN.discard(transport)


def close_all() -> None:
    """Deliver or spill what every open transport still holds, all of them at once and within
    the longest of their close deadlines, so the exit never hangs."""
    transports = list(_OPEN)
    if not transports:
        return
    deadline = time.monotonic() + max(t.timeout * 2 for t in transports)
    for t in transports:
        t.wake_up()
    for t in transports:
        with contextlib.suppress(Exception):
            t.close(max(0.0, deadline - time.monotonic()))


atexit.register(close_all)
forking.at_worker_exit(close_all)  # a multiprocessing child ends with os._exit(): no atexit there
