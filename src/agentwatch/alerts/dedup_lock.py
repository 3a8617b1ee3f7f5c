"""One writer at a time per dedup key, so concurrent batches neither open an alert twice nor
lose a repeat's count.

Storing a finding reads the open alert of its dedup key, then inserts or updates it. Two
transactions doing that at once for one key (pipeline workers, the ATR backlog, discovery,
the gateway) both read before either writes: both insert, or both update from the same count.

- PostgreSQL: a transaction-scoped advisory lock per key, taken in key order (two
  transactions never wait for each other in a cycle) and held until commit. Keys share
  :data:`BUCKETS` locks: a transaction that locks many keys (deleting a session with thousands
  of alerts, linking a thousand alerts to a case) would otherwise hold a lock for each, and the
  server's lock table (``max_locks_per_transaction`` x ``max_connections``, 6,400 by default)
  is shared by every database on it: running out fails every transaction there. Two keys in
  one bucket only wait for each other.
- SQLite: the database's write lock, taken before the first read. Python's driver begins a
  transaction only at the first write, so reads before it see the database as it was before
  another writer's commit; a write that changes nothing begins it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, false, func, select, update

from agentwatch.store.alerts_schema import alerts

LOCK_SPACE = 0x616C7274  # "alrt": advisory locks of alert dedup keys (two-key form, apart from others)
BUCKETS = 256  # the most advisory locks one transaction holds for dedup keys


def _lock_key(dedup_key: str) -> int:
    """A dedup key (hex) as one of :data:`BUCKETS` lock keys; a collision only makes two keys wait."""
    return int(dedup_key[:8], 16) % BUCKETS


def lock_dedup_keys(conn: Connection, dedup_keys: Iterable[str]) -> None:
    """Hold the write side of ``dedup_keys`` until ``conn``'s transaction ends."""
    keys = sorted({_lock_key(k) for k in dedup_keys})
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        for key in keys:
            conn.execute(select(func.pg_advisory_xact_lock(LOCK_SPACE, key)))
    else:
        conn.execute(update(alerts).where(false()).values(count=alerts.c.count))
