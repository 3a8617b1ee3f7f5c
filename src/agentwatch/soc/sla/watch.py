"""The SLA watch, a lifecycle part: a pass of :func:`evaluate.sweep` at start and then every
``sla.interval_s``.

Why a watch and not a computation at read time: a breach recorded once keeps the target it
broke, whatever the targets become later (a read-time computation would rewrite history at
every change of a target), its ``breached_at`` stays put, and reading the breaches costs a
page of an indexed table, not a pass over every alert. Every node of a deployment runs it; a
breach has a deterministic id, so two nodes recording the same one store it once.

After each pass it sends a batch of the new breaches' notices (:mod:`notifier`, through the
outbox on the breach rows: :mod:`outbox`), when ``sla.notify_outputs`` or ``sla.notify_oncall``
is set; a name in ``sla.notify_outputs`` that is no configured output refuses the start.

It does not subscribe to the live hub for alert changes: a subscriber there counts as a live
client in the health documents, and the pass reads the same ``updated_at`` the hub would give.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from agentwatch.soc.sla import evaluate
from agentwatch.soc.sla.notifier import BreachNotifier

log = structlog.get_logger("agentwatch.sla")


class SlaWatch:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self._task: asyncio.Task[None] | None = None
        self.notifier = BreachNotifier(aw)  # raises ValueError for a misspelt output name

    def pass_now(self, now: float | None = None) -> int:
        """One pass at ``now`` (the current time when None); the breaches it recorded."""
        settings = self.aw.settings.sla
        at = time.time() if now is None else now
        return evaluate.sweep(self.aw.engine, at, settings.max_age_days * 86_400.0, settings.notifying)

    async def notify_now(self, now: float | None = None) -> int:
        """Send a batch of the due breach notices at ``now``; how many were sent."""
        return await self.notifier.run(now)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.pass_now)
            except Exception:  # a store failure must not end the watch
                log.exception("sla.pass_failed")
            try:
                await self.notify_now()
            except Exception:  # nor a failure to notify: the breaches wait in the outbox
                log.exception("sla.notify_failed")
            await asyncio.sleep(self.aw.settings.sla.interval_s)

    async def start(self) -> None:
        if self.aw.settings.sla.enabled:
            self._task = asyncio.create_task(self._run(), name="agentwatch-sla-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def watch_of(aw: Any) -> SlaWatch:
    return aw.components["sla"]
