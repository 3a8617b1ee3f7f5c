"""The UEBA tables (Alembic branch ``ueba``, revision 0740_ueba).

``ueba_baselines`` holds each entity's baseline, every node's persist merged into it (its
counts in ``state``, JSON, with the row's ``generation`` and ``version``: see ``ueba.sync``);
``ueba_anomalies`` every anomaly raised, with the alert it opened or joined. ``kinds`` is the
reasons' kinds between blanks (`` burst rare_hour ``), so a filter by reason is one ``LIKE``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

ueba_baselines = Table(
    "ueba_baselines",
    metadata,
    Column("entity_id", String(36), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("value", String(512), nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_ueba_baselines_last_seen", ueba_baselines.c.last_seen, ueba_baselines.c.entity_id)

ueba_anomalies = Table(
    "ueba_anomalies",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("entity_id", String(36), nullable=False),
    Column("entity_type", String(16), nullable=False),
    Column("entity_value", String(512), nullable=False),
    Column("score", Float, nullable=False),
    Column("severity", Integer, nullable=False),
    Column("kinds", String(64), nullable=False),
    Column("reasons", Text, nullable=False),
    Column("ts", Float, nullable=False),
    Column("source", String(64), nullable=False),
    Column("event_ids", Text, nullable=False),
    Column("alert_id", String(36)),
    Column("created_at", Float, nullable=False),
)
Index("ix_ueba_anomalies_ts", ueba_anomalies.c.ts, ueba_anomalies.c.id)
Index("ix_ueba_anomalies_entity", ueba_anomalies.c.entity_id, ueba_anomalies.c.ts)
