"""Tables of the SLA capability (Alembic branch ``sla``, revision 0760_sla).

``sla_configs``: one target per severity band. ``sla_marks``: when each alert was first
acknowledged and when it was closed, as seen by the SLA watch (the alert row keeps only its
current status). ``sla_events``: the breaches recorded, one per alert and kind at most.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table

from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import metadata

sla_configs = Table(
    "sla_configs",
    metadata,
    Column("id", String(16), primary_key=True),  # the band
    Column("acknowledge_minutes", Integer, nullable=False),
    Column("resolve_minutes", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("effective_at", Float, nullable=False),  # 0: the defaults, never changed
    Column("updated_by", String(256)),
)

sla_marks = Table(
    "sla_marks",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("acknowledged_at", Float),  # first time the alert left "open"
    Column("closed_at", Float),  # NULL while not closed (a reopened alert loses it)
)

sla_events = Table(
    "sla_events",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid5 of alert and kind: one per alert and kind
    Column("alert_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # acknowledge | resolve
    Column("band", String(16), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("limit_minutes", Integer, nullable=False),
    Column("started_at", Float, nullable=False),  # the alert's creation
    Column("due_at", Float, nullable=False),
    Column("breached_at", Float, nullable=False),
    Column("ended_at", Float),  # NULL: still running
    Column("end_reason", String(16)),  # acknowledged | closed | deleted
)
Index("ix_sla_events_breached", sla_events.c.breached_at, sla_events.c.id)
Index("ix_sla_events_running", sla_events.c.ended_at)
Index("ix_sla_events_alert", sla_events.c.alert_id, sla_events.c.kind, unique=True)
# Each pass reads the alerts created inside the watched period (``sla.max_age_days``) that are
# past a target: a range of ``created_at``, without this index a scan of the whole table (0761).
Index("ix_alerts_created", alerts.c.created_at)
