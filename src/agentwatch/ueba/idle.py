"""Idle baselines: the UEBA baselines not written for ``maintenance.ueba_baseline_idle_days`` go.

A baseline is written (``updated_at``, the server's clock) whenever its entity's events changed
it, at the next persist; one not written for that long belongs to an entity no event has
named since. The maintenance chore ``ueba_idle_baselines`` deletes them oldest write first,
one page per transaction. This node's detector forgets each one deleted, so the entity, seen
again, warms up afresh; one it changed and has not written yet is spared (it is written at
the next persist). Another node (a NATS worker) holding a deleted one in memory finds it gone
at its next write and forgets it too, as after a reset; until then it may still learn from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from agentwatch.ueba import store

PAGE = 1000


@dataclass
class _Page:
    """One page of the purge, after the key ``after``; ``last`` is set once it ran."""

    engine: Engine
    cutoff: float
    after: tuple[float, str] | None
    last: tuple[float, str] | None = None

    def __call__(self, spared: frozenset[str]) -> list[str]:
        self.last, gone = store.delete_idle(self.engine, self.cutoff, self.after, PAGE, spared)
        return gone


def purge_idle_baselines(
    engine: Engine, cutoff: float, stopping: threading.Event | None = None, detector: Any = None
) -> int:
    """Delete the baselines last written before ``cutoff`` (epoch seconds); how many went.
    ``detector`` (a :class:`~agentwatch.ueba.detector.UebaDetector`, or None) forgets them too."""
    removed = 0
    after: tuple[float, str] | None = None
    while stopping is None or not stopping.is_set():
        page = _Page(engine, cutoff, after)
        removed += len(page(frozenset()) if detector is None else detector.forget_idle(page))
        if page.last is None:  # the last baseline written before the cutoff was looked at
            break
        after = page.last
    return removed


def purge_idle_of(aw: Any) -> Callable[[Engine, float, threading.Event], int]:
    """The purge of ``aw``'s chore: with this node's UEBA detector when it has one (looked up
    at each run: the detector is made when the pipeline or a route first asks for it)."""

    def purge(engine: Engine, cutoff: float, stopping: threading.Event) -> int:
        return purge_idle_baselines(engine, cutoff, stopping, getattr(aw, "__dict__", {}).get("ueba_detector"))

    return purge
