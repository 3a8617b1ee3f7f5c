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
    Column("status", String(16), nullable=False),  # running, completed, stopped, failed, interrupted
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

# One row per tenant that ever scanned (revision 0301_discovery_scan_slots). Its ``scan_id`` is
# the tenant's running scan, claimed by one conditional UPDATE so that every process and node
# sharing the store agrees on it; ``owner`` is the claiming process, which keeps ``heartbeat_at``
# and the progress fresh while it scans. ``scheduled_at`` is when the server-side schedule last
# started a scan, so the processes take turns instead of each starting one per period.
scan_slots = Table(
    "discovery_scan_slots",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("scan_id", String(36)),  # NULL: no scan running
    Column("owner", String(32)),
    Column("target", Text),
    Column("detectors", Text),  # JSON list
    Column("started_at", Float),
    Column("heartbeat_at", Float),
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("hosts_done", Integer, nullable=False, default=0),
    Column("hosts_total", Integer, nullable=False, default=0),
    Column("agents_found", Integer, nullable=False, default=0),
    Column("scheduled_at", Float),
)
