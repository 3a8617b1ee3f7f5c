"""One persist's write: each changed baseline merged into its stored row, in one transaction that
holds the rows (``store.locked``), so a concurrent writer's update is never lost.

For each baseline, by what the store holds now:

- no row: a baseline this node read or wrote there was reset (or deleted as idle) meanwhile:
  it is not written, and the node forgets it; a new one is inserted (a new ``generation``);
- a row of another generation than the one this node read: reset and begun again since; the
  same;
- the row as this node last read or wrote it (same ``version``): nobody else wrote it since, so
  the baseline is written as it is (one node alone keeps exactly what it learnt);
- otherwise the row plus what this node learnt since it last read or wrote it (``ueba.merge``).

Every write adds one to the row's version. Two nodes inserting one new entity at once: the
second's insert fails and its whole write is tried again, when the row is there to merge into.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from agentwatch.ueba import store
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.merge import merged

ATTEMPTS = 3


@dataclass
class Job:
    now: Baseline  # a copy of the baseline as the persist took it
    base: Baseline | None  # what it held when last read or written (None: a new one)
    result: Baseline | None = None  # what the store holds after the write; None: forget it
    as_is: bool = False  # written as it was (``result`` is ``now`` with a new version)


def _resolve(job: Job, row: Baseline | None, cap: int, alpha: float) -> tuple[Baseline | None, str]:
    now = job.now
    if row is None:
        if now.stored:
            return None, "gone"
        out = now.copy()
        out.generation, out.version = uuid.uuid4().hex, 1
        return out, "insert"
    if now.stored and row.generation != now.generation:
        return None, "gone"
    if now.stored and row.version == now.version:
        out = now.copy()
    else:
        out = merged(row, now, job.base, cap, alpha)
    out.generation, out.version = row.generation, row.version + 1
    return out, "as_is" if now.stored and row.version == now.version else "update"


def write(engine: Engine, jobs: Sequence[Job], cap: int, alpha: float) -> None:
    """Merge the jobs' baselines into the store; each job's ``result`` says what it holds now."""
    if not jobs:
        return  # nothing changed: no transaction (on SQLite it would take the write lock)
    for attempt in range(ATTEMPTS):
        try:
            with store.locked(engine, [j.now.entity_id for j in jobs], cap) as (conn, found):
                updated, inserted = [], []
                for job in jobs:
                    job.result, how = _resolve(job, found.get(job.now.entity_id), cap, alpha)
                    job.as_is = how in ("as_is", "insert")
                    if job.result is not None:
                        (inserted if how == "insert" else updated).append(job.result)
                store.put(conn, updated, inserted)
            return
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
