"""Runs whose process died: the heartbeat a running run keeps, and the sweep that ends it.

A clean stop completes every run it cuts off (:mod:`agentwatch.soc.playbooks.background`). A
process killed outright (SIGKILL, out of memory, power lost) completes nothing: its runs would
stay ``running`` for ever. So the process running a run refreshes the run's ``heartbeat_at``
every :func:`beat_every_s` seconds (and records the results of its ended steps, each as it ends),
and every node sweeps the store (:func:`sweep`, at its start and then every
:func:`sweep_every_s`): a run still ``running`` without a heartbeat for ``playbooks.stale_run_s``
seconds is ended ``interrupted`` with :data:`REASON`, keeping the step results recorded.

Such a run is never started again: nothing can tell whether the steps after the last one
recorded took effect (a webhook sent, a case opened), and running it twice could do them twice.
A run that another live process runs keeps its heartbeat fresh and is never swept, whatever the
number of processes and nodes sharing the store (their clocks must agree to well within
``stale_run_s``). Each run is ended by one conditional update, so two sweepers never both end
it; a run held for approval is not running and is not swept. A run ended so whose process was
only paused (a very long GC pause, a frozen VM) stays ``interrupted``: its completion is
conditional on the run still running (:func:`store.finish_run`). A run released by an approval
ends its request ``failed`` in the same transaction (:func:`approval.interrupted_in`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from agentwatch.soc.playbooks import approval, store

log = structlog.get_logger("agentwatch.playbooks")
REASON = (
    "interrupted: its process stopped while it ran (no heartbeat for playbooks.stale_run_s); "
    "steps after the last recorded one may or may not have taken effect"
)
MAX_BEAT_S = 5.0
MAX_SWEEP_S = 30.0


def beat_every_s(settings: Any) -> float:
    """Seconds between two heartbeats: a few, and at least four beats within ``stale_run_s``,
    so a slow write or two never makes a live run look dead."""
    return min(MAX_BEAT_S, settings.stale_run_s / 4)


def sweep_every_s(settings: Any) -> float:
    """Seconds between two sweeps: a dead run is ended at most this long after it is stale."""
    return min(MAX_SWEEP_S, settings.stale_run_s / 2)


class Heartbeat:
    """The heartbeat of the stored run ``run_id`` while this process runs it: a beat every
    :func:`beat_every_s` seconds, and one as each step ends (:meth:`step_ended`), which records
    ``results`` (the list the runner appends each step's result to) when it grew."""

    def __init__(self, aw: Any, run_id: str, results: list[dict[str, Any]]) -> None:
        self.aw = aw
        self.run_id = run_id
        self.results = results
        self.every_s = beat_every_s(aw.settings.playbooks)
        self._recorded = 0
        self._ended = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name=f"agentwatch-playbook-heartbeat-{self.run_id}")

    def step_ended(self) -> None:
        self._ended.set()

    async def _next(self) -> None:
        """Until a step ends or a beat is due. (Not ``wait_for``: on Python 3.11 it can swallow
        the cancellation of :meth:`stop` when a step has just ended, and beat on for ever.)"""
        waiter = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({waiter}, timeout=self.every_s)
        finally:
            waiter.cancel()
        self._ended.clear()

    async def _beat(self) -> None:
        while True:
            await self._next()
            grown = len(self.results) > self._recorded
            steps = list(self.results) if grown else None
            try:
                alive = await asyncio.to_thread(store.beat, self.aw.engine, self.run_id, steps)
            except Exception:  # a store hiccup: the next beat tries again
                log.warning("playbooks.heartbeat_failed", run=self.run_id, exc_info=True)
                continue
            if not alive:  # swept (its heartbeat lapsed: this process was stalled) or deleted
                log.warning("playbooks.run_no_longer_running", run=self.run_id)
                return
            if steps is not None:
                self._recorded = len(steps)

    async def stop(self) -> None:
        """Stop beating (before the run is completed, so that no beat follows its end)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None


async def sweep(aw: Any, now: float | None = None) -> int:
    """End ``interrupted`` the running runs without a heartbeat for ``playbooks.stale_run_s``
    seconds before ``now`` (the current time when None), and the approval requests that
    released them ``failed``; how many runs this pass ended."""
    at = time.time() if now is None else now
    before = at - aw.settings.playbooks.stale_run_s
    ended = await asyncio.to_thread(store.sweep_stale, aw.engine, before, REASON, approval.interrupted_in)
    for run, request_ended in ended:
        log.warning(
            "playbooks.run_interrupted_stale",
            run=run["id"],
            playbook=run["playbook_id"],
            heartbeat_at=run["heartbeat_at"],
            steps_recorded=len(run["steps"]),
        )
        if request_ended:
            await approval.audit_interrupted(aw, run["approval_id"])
    return len(ended)
