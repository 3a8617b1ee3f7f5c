"""Playbook runs started by a request that outlast it: the lifecycle part
``aw.components["playbook_runs"]``.

Three requests start a run: ``POST .../execute``, the approval of a held run
(``POST /api/v1/approvals/{id}:approve``) and the copilot's ``run_playbook`` action. Each stores
the run, then hands its steps to :func:`carry`, which starts them as a task of this part and
waits for it at most ``playbooks.execute_wait_s``: a run done by then is answered whole, as
always; a longer one is answered as it stands (``running``) and goes on here. The task belongs
to the server, not to the request, so a client going away (or giving up) does not stop it; the
runs list (and an approval request's status and outcome) show how it ended.

At shutdown the runs still going get :data:`DRAIN_S` seconds in all to end; those that do not
are cancelled and stored ``interrupted`` (the steps done so far, the step cut off
``interrupted``, the rest ``skipped``). An interrupted run is never started again: it may have
done part of its work (a webhook sent, a case opened), and running it twice could do that twice.

This part also sweeps the store for runs whose process died without a stop (killed, out of
memory): once as the server starts, then every :func:`liveness.sweep_every_s` seconds, it ends
``interrupted`` the ``running`` runs whose heartbeat lapsed (:mod:`agentwatch.soc.playbooks.liveness`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog

from agentwatch.soc.playbooks import liveness

log = structlog.get_logger("agentwatch.playbooks")
DRAIN_S = 10.0


class BackgroundRuns:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.drain_s = DRAIN_S
        self.tasks: set[asyncio.Task[Any]] = set()
        self.swept = 0  # runs this node's sweeps ended interrupted
        self._sweeping: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeping = asyncio.create_task(self._sweep(), name="agentwatch-playbook-sweep")

    async def sweep_now(self, now: float | None = None) -> int:
        """One sweep at ``now`` (the current time when None); the runs it ended."""
        found = await liveness.sweep(self.aw, now)
        self.swept += found
        return found

    async def _sweep(self) -> None:
        while True:
            try:
                await self.sweep_now()
            except Exception:  # a store failure must not end the sweeps
                log.exception("playbooks.sweep_failed")
            await asyncio.sleep(liveness.sweep_every_s(self.aw.settings.playbooks))

    def spawn(self, run: Coroutine[Any, Any, Any], run_id: str) -> asyncio.Task[Any]:
        """Run ``run`` as a task of the server (kept until it ends)."""
        task = asyncio.create_task(run, name=f"agentwatch-playbook-run-{run_id}")
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("playbooks.background_run_failed", task=task.get_name(), error=type(task.exception()).__name__)

    async def stop(self) -> None:
        """Stop sweeping; let the runs end within :data:`DRAIN_S` (``drain_s``), then cut the
        others off."""
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None
        pending = set(self.tasks)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=self.drain_s)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if late:
            log.warning("playbooks.runs_interrupted", runs=len(late))


def background_of(aw: Any) -> BackgroundRuns:
    return aw.components["playbook_runs"]


async def carry(aw: Any, work: Coroutine[Any, Any, Any], run_id: str) -> bool:
    """Start ``work`` (the steps of the stored run ``run_id``, and whatever records their end)
    as a task of the server and wait for it at most ``playbooks.execute_wait_s``; whether it
    ended by then. The caller cancelled meanwhile (its client gone) leaves the task running."""
    task = background_of(aw).spawn(work, run_id)
    await asyncio.wait({task}, timeout=aw.settings.playbooks.execute_wait_s)
    return task.done()
