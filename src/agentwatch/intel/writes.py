"""The writers' lock every write of indicators (and of their change log) holds until it commits."""

from __future__ import annotations

from sqlalchemy import Connection, false, func, select, update

from agentwatch.intel.schema import intel_iocs

# PostgreSQL: the advisory lock (two-key form; "intl") every writer of indicators holds until
# it commits, so that the count checked against intel.max_indicators is the count it writes
# onto, two batches never wait for each other's rows in a cycle, and the change log's numbers
# are drawn in the order their transactions commit (see intel.changes).
WRITE_LOCK = (0x696E746C, 0)


def hold_writes(conn: Connection) -> None:
    """Be the one writer of indicators until ``conn``'s transaction ends (taking it again in the
    same transaction is harmless). SQLite: the database's write lock, taken before the first read
    (a write that changes nothing begins the transaction; Python's driver would otherwise begin it
    only at the first real write, after the count)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(*WRITE_LOCK)))
    else:
        conn.execute(update(intel_iocs).where(false()).values(severity=intel_iocs.c.severity))
