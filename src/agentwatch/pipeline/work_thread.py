"""One thread per process for the CPU-bound side of intake: decoding bodies, then the batches.

Python runs one thread of a process at a time (the interpreter lock). Two threads that both
have Python to run, one decoding the next request's body and one storing and detecting the
batch before it, do not run side by side: each takes the lock from the other every few
milliseconds, or whenever the other calls into C code that lets it go (SQLite's driver does
around every statement it runs), and every handover costs both of them time and cache.
Measured with ``serve --processes 2`` on two cores and the ingest benchmark's batches of 1,000
events, old and new servers alternating: with decoding and the pipeline's batches on one
thread per process, the server kept the cores busier (1.70 against 1.60-1.70) and stored up to
5% more events per second into SQLite (1.03x in ``bench/ab.py``) than with a pool thread for
each.

Jobs run one at a time in the order they were handed in: a body decoded after a batch was
handed in waits for that batch. What runs here must never wait for another job of this
thread. Once closed (the pipeline stopped), jobs still handed in run on a pool thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

THREAD_NAME = "agentwatch-work"


class WorkThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self._closed = False

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """``fn(*args)`` on the work thread, with the caller's context variables (log fields)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        if self._closed:
            return await asyncio.to_thread(call)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """Let the thread end once its jobs are done; later jobs go to a pool thread."""
        self._closed = True
        self._executor.shutdown(wait=False)

    def join(self) -> None:
        """Close, then block until the jobs handed in have run (the server's shutdown, before
        it disposes of the store the jobs may be writing to)."""
        self._closed = True
        self._executor.shutdown(wait=True)
