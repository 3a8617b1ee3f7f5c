"""The rotations table of the on-call capability (Alembic branch ``oncall``, revision 0770_oncall).

A rotation's schedule is one JSON document (``spec``: members, shift length, start and
overrides with times as whole microseconds); the name is a column of its own, unique."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from agentwatch.store.schema import metadata

oncall_rotations = Table(
    "oncall_rotations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("spec", Text, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_oncall_rotations_created", oncall_rotations.c.created_at, oncall_rotations.c.id)
