"""Discovery tables (branch ``discovery``, revision 0300_discovery): scans and the agent inventory."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

scans = Table(
    "discovery_scans",
    metadata,
    Column("scan_id", String(36), primary_key=True),
    Column("tenant", String(64), nullable=False, default="default"),
    Column("started_at", Float, nullable=False),
    Column("completed_at", Float),
    Column("target", Text, nullable=False),
    Column("status", String(16), nullable=False),  # running, completed, stopped, failed
    Column("total_agents", Integer, nullable=False, default=0),
    Column("body", Text, nullable=False, default="{}"),  # the documented scan result, with its diff
)
Index("ix_discovery_scans_started", scans.c.tenant, scans.c.started_at)

agents = Table(
    "discovery_agents",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid5 of (address, port, protocol)
    Column("address", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("protocol", String(255), nullable=False),
    Column("source", String(16), nullable=False),  # scan, telemetry
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("last_scan_id", String(36)),
    Column("gone", Integer, nullable=False, default=0),
    Column("fingerprint", String(64), nullable=False, default=""),
    Column("body", Text, nullable=False, default="{}"),  # the documented agent object
)
Index("ix_discovery_agents_last_seen", agents.c.last_seen)
Index("ix_discovery_agents_address", agents.c.address, agents.c.port)
