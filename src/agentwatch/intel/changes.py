"""The change log of the indicators (``intel_changes``): how the nodes sharing one store keep
their in-memory indexes in step without rebuilding them.

Every write of indicators (``intel.store``: the API, feeds, playbooks, the expiry chore) adds a
row per indicator it wrote (``upsert``) or deleted (``delete``) in its own transaction
(:func:`record`): a change is logged if and only if it is committed. A node remembers the
highest number it applied (its position); every ``intel.sync_s`` it reads the rows after it
(:func:`read`) and applies each indicator named, as it is stored now (gone or expired, it leaves
the index; otherwise it is put in), so applying an entry twice, or late, does no harm.

Numbers and commit order. On PostgreSQL a row's number comes from a sequence when the row is
inserted, not when its transaction commits: of two writers running at once, the one that drew
7 could commit after the one that drew 8, and a reader that had moved its position to 8 would
never read 7. That cannot happen here: :func:`record` holds the writers' lock (``hold_writes``:
an advisory lock on PostgreSQL, released only after the commit is visible; the database's write
lock on SQLite) from before it draws its numbers until its transaction ends, so numbers are
drawn in commit order, and once a reader sees a number every lower one is committed or rolled
back. A rolled-back write leaves a gap for good; a reader passes it (there is nothing to apply).
Every writer goes through :func:`record`, which takes the lock itself.

Pruning (:func:`prune`, the maintenance chore ``intel_changes``) deletes the entries older than
``intel.changes_keep_s`` and records the highest number it deleted (``intel:changes_pruned_to``)
in the same transaction; a node whose position is below that missed entries it can no longer
read, and rebuilds its index whole.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, select

from agentwatch.intel.schema import intel_changes, intel_iocs
from agentwatch.intel.writes import hold_writes
from agentwatch.store import kv
from agentwatch.store.schema import kv as kv_table
from agentwatch.store.snapshot import snapshot

PRUNED_KEY = "intel:changes_pruned_to"
UPSERT, DELETE = "upsert", "delete"
CHUNK = 500
PRUNE_PAGE = 5_000


def _pruned_to(conn: Connection) -> int:
    raw = conn.execute(select(kv_table.c.value).where(kv_table.c.key == PRUNED_KEY)).scalar_one_or_none()
    return 0 if raw is None else int(orjson.loads(raw))


def head(conn: Connection) -> int:
    """The highest number the log has handed out and kept or pruned (0 for none), in the caller's
    transaction; under the writers' lock, the position of a node that has applied everything."""
    top = conn.execute(select(func.max(intel_changes.c.seq))).scalar_one_or_none()
    return max(int(top or 0), _pruned_to(conn))


def record(conn: Connection, written: Iterable[str], removed: Iterable[str], now: float | None = None) -> int:
    """Log the indicators (ids) a write stored and deleted, in its transaction; the log's head
    after them."""
    hold_writes(conn)  # numbers drawn in commit order (module docstring)
    at = time.time() if now is None else now
    rows = [{"ioc_id": i, "op": UPSERT, "at": at} for i in written]
    rows += [{"ioc_id": i, "op": DELETE, "at": at} for i in removed]
    for start in range(0, len(rows), CHUNK):
        conn.execute(intel_changes.insert(), rows[start : start + CHUNK])
    return head(conn)


@dataclass
class Batch:
    """What a node reads after its position, in one snapshot: the highest number pruned, the
    entries (number, indicator id, op) in order, and the stored rows of the indicators they name
    (an id missing here was deleted)."""

    pruned_to: int
    entries: list[tuple[int, str, str]] = field(default_factory=list)
    rows: dict[str, Any] = field(default_factory=dict)


def read(engine: Engine, position: int, limit: int) -> Batch:
    """At most ``limit`` entries after ``position`` and the indicators they name, as stored now."""
    with snapshot(engine) as conn:
        c = intel_changes.c
        found = conn.execute(select(c.seq, c.ioc_id, c.op).where(c.seq > position).order_by(c.seq).limit(limit))
        batch = Batch(_pruned_to(conn), [(int(s), i, o) for s, i, o in found])
        ids = sorted({e[1] for e in batch.entries})
        for start in range(0, len(ids), CHUNK):
            rows = conn.execute(select(intel_iocs).where(intel_iocs.c.id.in_(ids[start : start + CHUNK])))
            batch.rows.update((r.id, r) for r in rows)
    return batch


def prune(engine: Engine, before: float, stopping: threading.Event | None = None) -> int:
    """Delete the entries logged before ``before`` (a page at a time); how many went. The highest
    number deleted is kept, so a node that had not read it knows to rebuild. Under the writers'
    lock: two nodes pruning at once never move that number back."""
    gone = 0
    while stopping is None or not stopping.is_set():
        with engine.begin() as conn:
            hold_writes(conn)
            c = intel_changes.c
            seqs = list(conn.execute(select(c.seq).where(c.at < before).order_by(c.seq).limit(PRUNE_PAGE)).scalars())
            if seqs:
                conn.execute(delete(intel_changes).where(c.at < before, c.seq <= seqs[-1]))  # just this page
                kv.put_in(conn, PRUNED_KEY, max(_pruned_to(conn), int(seqs[-1])))
        gone += len(seqs)
        if len(seqs) < PRUNE_PAGE:
            break
    return gone
