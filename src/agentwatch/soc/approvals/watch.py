"""The expiry watch, a lifecycle part: a pass of :func:`decisions.expiry_pass` at start and then
every ``approvals.expiry_interval_s``. Every node runs it; the conditional update of each
expiry lets one node only handle a request (drop its held action, audit it). A request found
overdue by a decider before the watch came by is expired there and then, so the watch's
interval bounds nothing but how soon an overdue request shows ``expired`` in a list.

Each pass, the first one at the server's start included, also starts the held actions that were
approved but never started because the decider's node died in between
(:func:`decisions.release_pass`): one claim per action lets a single node start it. They run one
after another; a stop gives the pass under way :data:`DRAIN_S` seconds to end, then cuts the
action running off: it ends ``interrupted`` and is not started again (it may have done part of
its work)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from agentwatch.soc.approvals import decisions

log = structlog.get_logger("agentwatch.approvals")
DRAIN_S = 10.0


class ApprovalWatch:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.expired = 0
        self.recovered = 0
        self._task: asyncio.Task[None] | None = None
        self._releasing: asyncio.Task[int] | None = None

    async def pass_now(self, now: float | None = None) -> int:
        """One pass at ``now`` (the current time when None); the requests it expired."""
        found = await decisions.expiry_pass(self.aw, now)
        self.expired += found
        return found

    async def release_now(self, now: float | None = None) -> int:
        """Start the due actions left by a decider that died; how many this pass started."""
        found = await decisions.release_pass(self.aw, now)
        self.recovered += found
        return found

    async def _run(self) -> None:
        while True:
            try:
                await self.pass_now()
            except Exception:  # a store failure must not end the watch
                log.exception("approvals.expiry_pass_failed")
            # a task of its own, shielded: stopping the watch does not cut a started action off
            self._releasing = asyncio.create_task(self.release_now(), name="agentwatch-approvals-release")
            try:
                await asyncio.shield(self._releasing)
            except Exception:
                log.exception("approvals.release_pass_failed")
            await asyncio.sleep(self.aw.settings.approvals.expiry_interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="agentwatch-approvals-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        releasing, self._releasing = self._releasing, None
        if releasing is not None and not releasing.done():
            _, late = await asyncio.wait({releasing}, timeout=DRAIN_S)
            for task in late:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def watch_of(aw: Any) -> ApprovalWatch:
    return aw.components["approvals"]
