"""Runs every configured feed's sync at start and then every ``interval_s``; one sync of a
feed at a time, whether the schedule or ``POST /api/v1/intel/feeds/{id}/sync`` asked for it.
It also adds the chore ``intel_changes`` to the server's maintenance round: the change log's
entries older than ``intel.changes_keep_s`` are pruned every ``maintenance.interval_s``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from agentwatch.intel import changes, feeds
from agentwatch.intel.matcher import matcher_of
from agentwatch.intel.settings import FeedSettings
from agentwatch.keyed_locks import KeyedLocks
from agentwatch.maintenance import Chore

log = structlog.get_logger("agentwatch.intel")

PRUNE_CHORE = "intel_changes"


class FeedSchedule:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.turns = KeyedLocks()
        self._tasks: list[asyncio.Task[None]] = []

    def feed(self, feed_id: str) -> FeedSettings | None:
        return next((f for f in self.aw.settings.intel.feeds if f.id == feed_id), None)

    async def sync(self, feed: FeedSettings) -> dict[str, Any]:
        """Sync ``feed`` now (after a sync of it already running); its status. Raises FeedError."""
        settings = self.aw.settings.intel
        async with self.turns.hold(feed.id):
            done = await feeds.sync(self.aw.engine, feed, settings.default_severity, settings.max_indicators)
        await asyncio.to_thread(matcher_of(self.aw).reload)
        return done

    async def _run(self, feed: FeedSettings) -> None:
        while True:
            try:
                await self.sync(feed)
            except feeds.FeedError:
                pass  # logged and kept in the feed's status; tried again next interval
            except Exception:  # a store failure must not end the schedule
                log.exception("intel.feed_sync_crashed", feed=feed.id)
            await asyncio.sleep(feed.interval_s)

    def _prune_chore(self) -> None:
        maintenance = self.aw.components.get("maintenance")
        if maintenance is None or any(c.name == PRUNE_CHORE for c in maintenance.chores):
            return
        keep_s = self.aw.settings.intel.changes_keep_s
        engine = self.aw.engine
        maintenance.chores.append(
            Chore(PRUNE_CHORE, lambda stopping: changes.prune(engine, time.time() - keep_s, stopping))
        )

    async def start(self) -> None:
        self._prune_chore()  # intel off or not, the API still writes indicators (and logs them)
        if not self.aw.settings.intel.enabled:
            return
        for feed in self.aw.settings.intel.feeds:
            self._tasks.append(asyncio.create_task(self._run(feed), name=f"agentwatch-feed-{feed.id}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


def schedule_of(aw: Any) -> FeedSchedule:
    return aw.components["intel_feeds"]
