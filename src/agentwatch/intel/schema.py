"""The tables of the intel capability (Alembic branch ``intel``): the indicators (0600_intel) and
their change log (0601_intel_changes)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

intel_iocs = Table(
    "intel_iocs",
    metadata,
    Column("id", String(36), primary_key=True),
    # sha256 of kind and value: the unique key (a long URL is too wide for a B-tree entry)
    Column("digest", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("value", Text, nullable=False),
    Column("source", String(128), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float),
)
Index("ix_intel_iocs_created", intel_iocs.c.created_at, intel_iocs.c.id)
Index("ix_intel_iocs_kind", intel_iocs.c.kind)

# One row per indicator written or deleted, in the transaction that did it (see intel.changes):
# other nodes read the rows after the last one they applied. AUTOINCREMENT on SQLite: a number
# is never handed out twice, even once pruning has emptied the table.
intel_changes = Table(
    "intel_changes",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("ioc_id", String(36), nullable=False),
    Column("op", String(8), nullable=False),  # upsert or delete
    Column("at", Float, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_intel_changes_at", intel_changes.c.at)
