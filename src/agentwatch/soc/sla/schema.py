"""Tables of the SLA capability (Alembic branch ``sla``, revisions 0760_sla to
0764_sla_notify_outputs).

``sla_configs``: one target per severity band, each of its two limits with its own start.
``sla_marks``: when the current life of each alert started (its creation, or when the watch
saw it reopened), and when in that life it was first acknowledged and closed, as seen by the
SLA watch (the alert row keeps only its current status). ``sla_events``: the breaches
recorded, one per alert, kind and life at most, each with the outbox of its notice (0763), which
remembers the targets the notice is meant for and those done with it (0764; see :mod:`outbox`).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.alerts_schema import alerts
from agentwatch.store.schema import metadata

sla_configs = Table(
    "sla_configs",
    metadata,
    Column("id", String(16), primary_key=True),  # the band
    Column("acknowledge_minutes", Integer, nullable=False),
    Column("resolve_minutes", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("effective_at", Float, nullable=False),  # the last change; 0: the defaults, never changed
    # since when each limit judges (its last change, or the band enabled again); 0: always
    Column("acknowledge_effective_at", Float, nullable=False, server_default="0"),
    Column("resolve_effective_at", Float, nullable=False, server_default="0"),
    Column("updated_by", String(256)),
)

sla_marks = Table(
    "sla_marks",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("acknowledged_at", Float),  # first time the alert left "open" in this life
    Column("closed_at", Float),  # NULL while not closed in this life
    # the start of the alert's current life: its created_at, or when it was seen reopened
    # (NULL only for a mark of 0761 whose alert was already gone: dropped by the next pass)
    Column("started_at", Float),
)
Index("ix_sla_marks_started", sla_marks.c.started_at)

sla_events = Table(
    "sla_events",
    metadata,
    Column("id", String(36), primary_key=True),  # uuid5 of alert, kind and life (0761: alert and kind)
    Column("alert_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # acknowledge | resolve
    Column("band", String(16), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("limit_minutes", Integer, nullable=False),
    Column("started_at", Float, nullable=False),  # the start of the alert's life it belongs to
    Column("due_at", Float, nullable=False),
    Column("breached_at", Float, nullable=False),
    Column("ended_at", Float),  # NULL: still running
    Column("end_reason", String(16)),  # acknowledged | closed | deleted
    # the notice (0763): NULL waiting; sent | failed | off | ended | simulated | disabled
    Column("notify_state", String(16)),
    Column("notify_attempts", Integer, nullable=False, server_default="0"),
    Column("notify_after", Float),  # no attempt before: the backoff, or the claim's expiry
    Column("notify_claim", String(36)),  # the pass that claimed it last
    Column("notified_at", Float),
    Column("notify_error", String(256)),  # the last failure (no secrets: the outputs' own messages)
    # (0764) JSON lists of target keys ("output:<name>", "oncall"): those the notice is meant for,
    # fixed at its first attempt (NULL before), and those of them done with it (accepted it)
    Column("notify_targets", Text),
    Column("notify_done", Text),
)
Index("ix_sla_events_breached", sla_events.c.breached_at, sla_events.c.id)
Index("ix_sla_events_running", sla_events.c.ended_at)
# the notices still waiting, oldest first (0763)
Index("ix_sla_events_notify", sla_events.c.notify_state, sla_events.c.notify_after)
# at most one breach per alert, kind and life, whichever nodes record it (0762; 0760 had one per
# alert and kind, so an alert reopened or made again could not breach a second time)
Index("ix_sla_events_life", sla_events.c.alert_id, sla_events.c.kind, sla_events.c.started_at, unique=True)
# Each pass reads the alerts created inside the watched period (``sla.max_age_days``) that are
# past a target: a range of ``created_at``, without this index a scan of the whole table (0761).
Index("ix_alerts_created", alerts.c.created_at)
