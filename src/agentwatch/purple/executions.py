"""The executions lifecycle part (``aw.components["purple"]``): starts runs of atomic tests as
tasks of the server, cancels them, and stops them with the server.

At most :data:`MAX_RUNNING` runs wait at a time in the whole deployment (counted in the
store, under a lock, as the new run is stored): a run sends a handful of events, but waits up
to its timeout polling for alerts. A run still ``running`` :data:`GRACE_S` past its own
deadline (created + timeout) was cut off by a stop or a crash: it is marked failed when a
server starts, before each launch and every :data:`SWEEP_S` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import structlog

from agentwatch.purple import runner, store
from agentwatch.purple.catalog import AtomicTest

log = structlog.get_logger("agentwatch.purple")

MAX_RUNNING = 8
MAX_TIMEOUT_S = 300.0
DEFAULT_TIMEOUT_S = 30.0
GRACE_S = 60.0
SWEEP_S = 30.0


class Busy(Exception):
    """Too many runs are waiting already."""


class Executions:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.tasks: dict[str, asyncio.Task[str]] = {}
        self.runs = 0
        self.sweeper: asyncio.Task[None] | None = None

    async def _interrupt_stale(self) -> None:
        gone = await asyncio.to_thread(store.interrupt_stale, self.aw.engine, GRACE_S)
        if gone:
            log.warning("purple.runs_interrupted", runs=gone)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self._interrupt_stale()
            except Exception:
                log.exception("purple.sweep_failed")

    async def start(self) -> None:
        await self._interrupt_stale()
        self.sweeper = asyncio.create_task(self._sweep(), name="purple-sweeper")

    async def launch(self, test: AtomicTest, timeout_s: float, requested_by: str) -> dict[str, Any]:
        """Store a new running execution and start it; its stored form."""
        engine = self.aw.engine
        await self._interrupt_stale()
        execution_id = str(uuid.uuid4())
        row = {
            "id": execution_id,
            "test_id": test.id,
            "status": store.RUNNING,
            "session_id": runner.session_of(execution_id),
            "host": runner.host_of(execution_id),
            "requested_by": requested_by[:256],
            "timeout_s": timeout_s,
            "created_at": time.time(),
        }
        if not await asyncio.to_thread(store.create, engine, row, MAX_RUNNING):
            raise Busy(f"executions: at most {MAX_RUNNING} runs wait at a time; retry when one has finished")
        task = asyncio.create_task(runner.run(self.aw, test, execution_id, timeout_s), name=f"purple-{execution_id}")
        self.tasks[execution_id] = task
        task.add_done_callback(lambda _t, key=execution_id: self._done(key))
        doc = await asyncio.to_thread(store.get, engine, execution_id)
        assert doc is not None  # just stored; only a finished run can be deleted
        return doc

    def _done(self, execution_id: str) -> None:
        self.tasks.pop(execution_id, None)
        self.runs += 1

    async def cancel(self, execution_id: str) -> bool:
        """Cancel a running execution (on this node or another); False when it was not running."""
        done = await asyncio.to_thread(store.finish, self.aw.engine, execution_id, "cancelled")
        task = self.tasks.get(execution_id)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return done

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "running": len(self.tasks), "finished": self.runs}

    async def stop(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def executions_of(aw: Any) -> Executions | None:
    return aw.components.get("purple")
