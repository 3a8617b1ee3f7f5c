"""Automatic playbooks: the lifecycle part (``aw.components["playbooks"]``) that starts the
enabled playbooks with an ``alert`` trigger on the new alerts matching them.

It listens to the alert recorder (called after the alerts are committed, like the alert
outputs), matches each new alert against an in-memory copy of the automatic playbooks (re-read
every ``playbooks.refresh_s`` and at once after a change on this node) and queues the runs:
ingest never waits for a playbook. The queue holds ``playbooks.queue_size`` runs; what comes
past it is dropped and counted (``dropped`` in ``/api/v1/health``). One worker runs them one
after another. An alert recorded while a playbook runs starts nothing (:data:`runner.IN_RUN`),
and a playbook runs at most once on one alert (the runs' unique ``auto_key``). A queued run
reads its playbook again as it starts: one deleted, disabled or no longer matching the alert
meanwhile does not run (``stale`` counts them), and one replaced runs its new steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from agentwatch.soc.playbooks import runner, store
from agentwatch.soc.playbooks.model import matches

log = structlog.get_logger("agentwatch.playbooks")
STARTED_BY = "trigger:alert"
# who asked for an automatic run, for the four-eyes rule of its approval: the system, never a
# person (a person is ``kind:id`` of a credential, and no credential has the kind "system"), so
# any person holding approvals:decide may decide it
SYSTEM_PERSON = "system:playbook-trigger"


class PlaybookTrigger:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings = aw.settings.playbooks
        self.playbooks: list[dict[str, Any]] = []
        self.queue: asyncio.Queue[tuple[dict[str, Any], dict[str, Any]]] = asyncio.Queue(self.settings.queue_size)
        self.dropped = 0
        self.skipped_in_run = 0
        self.stale = 0
        self.runs = 0
        self._tasks: list[asyncio.Task[Any]] = []
        if self.settings.automatic:
            aw.alerts.listeners.append(self.on_alerts)

    async def on_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Alert listener: queue a run per (automatic playbook, new alert) that match."""
        if runner.IN_RUN.get() is not None:
            self.skipped_in_run += len(alerts)
            return
        for alert in alerts:
            for playbook in self.playbooks:
                if not matches(playbook["trigger"], alert):
                    continue
                try:
                    self.queue.put_nowait((playbook, alert))
                except asyncio.QueueFull:
                    self.dropped += 1
                    log.warning("playbooks.queue_full", playbook=playbook["id"], alert=alert.get("id"))

    async def reload(self) -> None:
        self.playbooks = await asyncio.to_thread(store.automatic, self.aw.engine)

    async def start(self) -> None:
        if not self.settings.automatic:
            return
        await self.reload()
        self._tasks = [asyncio.create_task(self._work()), asyncio.create_task(self._refresh())]

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            try:
                await self.reload()
            except Exception:
                log.exception("playbooks.reload_failed")

    async def _work(self) -> None:
        while True:
            queued, alert = await self.queue.get()
            try:
                playbook = await asyncio.to_thread(store.get, self.aw.engine, queued["id"])
                if playbook is None or not playbook["enabled"] or not matches(playbook["trigger"], alert):
                    self.stale += 1
                    continue
                done = await runner.execute(
                    self.aw,
                    playbook,
                    alert,
                    dry_run=False,
                    trigger="automatic",
                    started_by=STARTED_BY,
                    person=SYSTEM_PERSON,
                )
                self.runs += done is not None
            except Exception:
                log.exception("playbooks.run_failed", playbook=queued["id"])
            finally:
                self.queue.task_done()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "automatic_playbooks": len(self.playbooks),
            "queued": self.queue.qsize(),
            "runs": self.runs,
            "dropped": self.dropped,
            "stale": self.stale,
        }

    async def stop(self) -> None:
        """Finish the queued runs (10 s at most), then stop."""
        if self._tasks and not self._tasks[0].done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), 10)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def trigger_of(aw: Any) -> PlaybookTrigger | None:
    return aw.components.get("playbooks")
