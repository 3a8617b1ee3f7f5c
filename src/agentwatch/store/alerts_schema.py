"""Alert tables (foundation branch, revisions 0002_alerts and 0004_alerts_assignee)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dedup_key", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("detector", String(128), nullable=False),
    Column("rule_id", String(256), nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("severity", Integer, nullable=False),
    Column("status", String(32), nullable=False, default="open"),
    Column("assignee", String(128)),  # the analyst working on it (free text); NULL: nobody
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("session_id", String(256)),
    Column("entity_ids", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),
    Column("body", Text, nullable=False, default="{}"),
)
Index("ix_alerts_dedup", alerts.c.dedup_key, alerts.c.last_seen)
Index("ix_alerts_last_seen", alerts.c.last_seen)
Index("ix_alerts_session", alerts.c.session_id)
Index("ix_alerts_type", alerts.c.type, alerts.c.last_seen)
