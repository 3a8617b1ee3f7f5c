"""The tables of the hunt-as-code capability (Alembic branch ``hunts``, revision 0750_hunts):
one row per run of a hunt, and the lease a node holds on a hunt while it runs it."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

hunt_runs = Table(
    "hunt_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("hunt_id", String(64), nullable=False),
    Column("definition_hash", String(64), nullable=False),
    Column("trigger", String(16), nullable=False),  # schedule | manual
    Column("status", String(16), nullable=False),  # ok | error
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("query_total", Integer, nullable=False),
    Column("scanned", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("alert_id", String(36)),
    Column("error", Text),
    Column("body", Text, nullable=False),  # JSON: event ids, entities, indicator counts, filters
)
Index("ix_hunt_runs_hunt", hunt_runs.c.hunt_id, hunt_runs.c.started_at)

# A node runs a hunt only while it holds the hunt's lease (a row, so SQLite and PostgreSQL
# behave the same); a lease whose holder died expires on its own.
hunt_leases = Table(
    "hunt_leases",
    metadata,
    Column("hunt_id", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)
