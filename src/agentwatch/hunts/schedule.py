"""The hunt schedule (lifecycle component ``hunts``): reloads changed definitions and runs the
due hunts every ``hunts.tick_s``, and runs one on demand (``POST /api/v1/hunts/{id}/run``).

Bounds: each due hunt runs in its own task, at most ``hunts.max_concurrent`` at once on a node,
and a run stops itself after ``hunts.run_timeout_s``, so a slow hunt holds one slot for at most
that long and never delays the others beyond it. One run of a hunt at a time per node (a keyed
lock) and across nodes (the database lease of :mod:`agentwatch.hunts.store`); a scheduled run
first reads when the hunt last ran on any node, so two nodes sharing a PostgreSQL store run a
hunt once per interval, not once per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from typing import Any

import structlog

from agentwatch.hunts import runner, store
from agentwatch.hunts.catalog import Catalog
from agentwatch.hunts.definition import Hunt
from agentwatch.keyed_locks import KeyedLocks

log = structlog.get_logger("agentwatch.hunts")

LEASE_MARGIN_S = 60.0  # a lease outlives the run's own time limit by this much


class Busy(Exception):
    """Another node is running the hunt."""


class HuntSchedule:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.settings = aw.settings.hunts
        self.catalog = Catalog(self.settings.folder(aw.settings.data_dir), self.settings)
        self.holder = uuid.uuid4().hex  # this node, in the lease table
        self.turns = KeyedLocks()
        self._slots = asyncio.Semaphore(self.settings.max_concurrent)
        self._next_due: dict[str, float] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.catalog.refresh)
        if self.settings.enabled:
            self._loop_task = asyncio.create_task(self._loop(), name="agentwatch-hunts")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a store or file system failure must not end the schedule
                log.exception("hunts.tick_failed")
            await asyncio.sleep(self.settings.tick_s)

    async def tick(self) -> None:
        """Reload changed files, then start every due hunt not already running here."""
        await asyncio.to_thread(self.catalog.refresh)
        now = time.time()
        hunts = self.catalog.hunts
        for gone in [k for k in self._next_due if k not in hunts]:
            del self._next_due[gone]
        for hunt in list(hunts.values()):
            hid = hunt.definition.id
            if hunt.definition.schedule is None or hid in self._running or self._next_due.get(hid, 0.0) > now:
                continue
            task = asyncio.create_task(self._scheduled(hunt), name=f"agentwatch-hunt-{hid}")
            self._running[hid] = task
            task.add_done_callback(lambda _t, k=hid: self._running.pop(k, None))

    async def _scheduled(self, hunt: Hunt) -> None:
        interval = float(hunt.definition.schedule or 0.0)
        self._next_due[hunt.definition.id] = time.time() + interval
        try:
            await self.run(hunt, "schedule")
        except Busy:  # another node has it: look again next tick (it may have died mid-run)
            self._next_due[hunt.definition.id] = time.time()
        except Exception:
            log.exception("hunts.run_crashed", hunt=hunt.definition.id)

    async def run(self, hunt: Hunt, trigger: str) -> dict[str, Any] | None:
        """Run ``hunt`` now; the stored run, or None when a scheduled run found that another node
        ran it within its interval. Raises :class:`Busy` while another node is running it."""
        hid = hunt.definition.id
        engine = self.aw.engine
        async with self.turns.hold(hid), self._slots:
            ttl = self.settings.run_timeout_s + LEASE_MARGIN_S
            if not await asyncio.to_thread(store.take_lease, engine, hid, self.holder, ttl):
                raise Busy(hid)
            try:
                if trigger == "schedule" and not await self._due(hunt):
                    return None
                keep = functools.partial(store.renew_lease, engine, hid, self.holder, ttl)
                run, events = await asyncio.to_thread(runner.execute, engine, hunt, self.settings, trigger, keep)
                alert = hunt.definition.alert
                if alert is not None and run.matched and events:
                    try:
                        raised = await self.aw.alerts.record([runner.finding(hunt, run, events, int(alert.severity))])
                        run.alert_id = raised[0]["id"] if raised else None
                    except Exception:  # the run's results are kept even when its alert is not
                        log.exception("hunts.alert_failed", hunt=hid)
                        run.status, run.error = "error", "alert: the hunt's alert could not be recorded"
                await asyncio.to_thread(store.save, engine, run, self.settings.history)
                if trigger == "schedule":
                    self._next_due[hid] = run.started_at + float(hunt.definition.schedule or 0.0)
                log.info("hunts.ran", hunt=hid, trigger=trigger, matched=run.matched, status=run.status)
                return await asyncio.to_thread(store.get_run, engine, hid, run.id)
            finally:
                await asyncio.to_thread(store.release_lease, engine, hid, self.holder)

    async def _due(self, hunt: Hunt) -> bool:
        """Whether no node started a scheduled run of ``hunt`` within its interval."""
        interval = float(hunt.definition.schedule or 0.0)
        last = await asyncio.to_thread(store.last_scheduled_start, self.aw.engine, hunt.definition.id)
        slack = min(1.0, interval / 20)  # this node's own tick lag
        if last is not None and time.time() < last + interval - slack:
            self._next_due[hunt.definition.id] = last + interval
            return False
        return True

    async def stop(self) -> None:
        tasks = [t for t in [self._loop_task, *self._running.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None


def schedule_of(aw: Any) -> HuntSchedule:
    return aw.components["hunts"]
