"""Periodic maintenance: named chores run every ``maintenance.interval_s`` while the server runs.

A chore is blocking store work (a purge, say), so it runs on a worker thread, never on the event
loop. One round runs every chore in turn; a chore that fails is logged and the others run, and
so does the next round. On shutdown the component sets the chores' ``stopping`` event (a chore
doing long work checks it, say between two pages, and returns) and waits a bounded time for
the round under way; the engine is disposed after that.

The built-in chores: ``expired_explanations`` deletes cached alert explanations past
``llm.explanation_ttl_s`` (``alerts.explanation_cache``), whether or not anyone asks for one;
``expired_rule_drafts`` does the same for drafted Sigma rules (``detect.suggestion_draft``), and
``expired_indicators`` deletes indicators of compromise past their ``expires_at`` (``intel.store``).
With ``maintenance.events_retention_days`` set, ``events_retention`` deletes the events stored
longer ago than that (``store.retention``). With ``maintenance.touches_retention_days`` set,
``touches_retention`` deletes the older honeytoken touches no open alert or case holds
(``soc.honeytokens.retention``); with ``maintenance.ueba_baseline_idle_days`` set,
``ueba_idle_baselines`` deletes the UEBA baselines not updated for that long (``ueba.idle``).
Another periodic chore is one more :class:`Chore` in :func:`builtin_chores`, or appended to
``Maintenance.chores`` before the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("agentwatch.maintenance")

DAY_S = 86_400.0
STOP_WAIT_S = 10.0  # longest wait, on shutdown, for the round under way to return


@dataclass(frozen=True)
class Chore:
    """One periodic job. ``run(stopping)`` does blocking work on a worker thread and returns how
    many things it removed or changed; it should return early once ``stopping`` is set."""

    name: str
    run: Callable[[threading.Event], int]


def builtin_chores(aw: Any) -> list[Chore]:
    from agentwatch.alerts import explanation_cache
    from agentwatch.detect import suggestion_draft
    from agentwatch.intel import store as intel_store

    purges = {
        "expired_explanations": explanation_cache.purge_expired,
        "expired_rule_drafts": suggestion_draft.purge_expired,
        "expired_indicators": intel_store.purge_expired,
    }
    chores = [
        Chore(name, lambda stopping, purge=purge: purge(aw.engine, time.time(), stopping))
        for name, purge in purges.items()
    ]
    m = aw.settings.maintenance
    if m.events_retention_days:
        from agentwatch.store.retention import purge_events

        chores.append(_aged("events_retention", aw, m.events_retention_days, purge_events))
    if m.touches_retention_days:
        from agentwatch.soc.honeytokens.retention import purge_touches

        chores.append(_aged("touches_retention", aw, m.touches_retention_days, purge_touches))
    if m.ueba_baseline_idle_days:
        from agentwatch.ueba.idle import purge_idle_of

        chores.append(_aged("ueba_idle_baselines", aw, m.ueba_baseline_idle_days, purge_idle_of(aw)))
    return chores


def _aged(name: str, aw: Any, days: int, purge: Callable[..., int]) -> Chore:
    """A chore deleting what is older than ``days``: ``purge(engine, cutoff, stopping)``."""
    return Chore(name, lambda stopping: purge(aw.engine, time.time() - days * DAY_S, stopping))


class Maintenance:
    """Registered at ``lifecycle["maintenance"]``; ``chores`` run in order, once a round."""

    def __init__(self, aw: Any) -> None:
        self.interval_s: float = aw.settings.maintenance.interval_s
        self.chores: list[Chore] = builtin_chores(aw)
        self.rounds = 0  # rounds finished (every chore ran, failed or not)
        self._stopping = threading.Event()  # seen by chores on their threads
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._wake = asyncio.Event()  # bound to the running loop
        self._task = asyncio.create_task(self._loop(), name="maintenance")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)
        except TimeoutError:
            log.warning("maintenance.stop_timeout", waited_s=STOP_WAIT_S)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def run_round(self) -> dict[str, int]:
        """Every chore once, in order; what each returned (a failed one is left out)."""
        done: dict[str, int] = {}
        for chore in list(self.chores):
            if self._stopping.is_set():
                break
            started = time.monotonic()
            try:
                count = await asyncio.to_thread(chore.run, self._stopping)
            except Exception as exc:  # one broken chore must not end maintenance
                log.warning("maintenance.chore_failed", chore=chore.name, error=type(exc).__name__, exc_info=True)
                continue
            done[chore.name] = count
            if count:
                log.info("maintenance.chore_done", chore=chore.name, count=count, took_s=time.monotonic() - started)
        self.rounds += 1
        return done

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            await self.run_round()
