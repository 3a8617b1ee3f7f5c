"""Tables of the detect capability (Alembic branch ``detect``, revision 0400_detect)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

alert_feedback = Table(
    "alert_feedback",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("alert_id", String(36), nullable=False),
    Column("feedback", String(8), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("origin", String(64), nullable=False, default="api"),
    Column("principal", String(256), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)
Index("ix_alert_feedback_alert", alert_feedback.c.alert_id, alert_feedback.c.created_at)

# Uploaded rules (with their YAML) and enable flags of any rule, uploaded or not.
detect_rules = Table(
    "detect_rules",
    metadata,
    Column("rule_id", String(256), primary_key=True),
    Column("format", String(16), nullable=False, default="sigma"),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("uploaded", Boolean, nullable=False, default=False),
    Column("title", Text, nullable=False, default=""),
    Column("yaml", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# How often each rule fired, per hour of event time (for 24 h counts and timelines).
rule_fires = Table(
    "rule_fires",
    metadata,
    Column("rule_id", String(256), primary_key=True),
    Column("hour", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
)
Index("ix_rule_fires_hour", rule_fires.c.hour)
