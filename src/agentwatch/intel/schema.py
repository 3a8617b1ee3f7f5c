"""The indicator table of the intel capability (Alembic branch ``intel``, revision 0600_intel)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

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
