"""The purple-team tables (Alembic branch ``purple``, revision 0780_purple): executions of
atomic tests, ATT&CK coverage snapshots, tabletop sessions and their steps."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from agentwatch.store.schema import metadata

purple_executions = Table(
    "purple_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("test_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),  # running | passed | failed | cancelled
    Column("session_id", String(64), nullable=False),  # every simulated event of the run carries it
    Column("host", String(128), nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("events_at", Float),  # when the pipeline acknowledged the events
    Column("finished_at", Float),
    Column("event_ids", Text, nullable=False, default="[]"),
    Column("results", Text, nullable=False, default="[]"),  # per expected detection
    Column("unexpected", Text, nullable=False, default="[]"),  # other alerts of the run
    Column("error", Text),
)
Index("ix_purple_exec_created", purple_executions.c.created_at, purple_executions.c.id)
Index("ix_purple_exec_test", purple_executions.c.test_id, purple_executions.c.created_at)

purple_snapshots = Table(
    "purple_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("label", String(128), nullable=False, default=""),
    Column("rules", Integer, nullable=False),  # enabled rules when taken
    Column("techniques", Text, nullable=False),  # JSON: technique ids covered by enabled rules
    Column("tests", Text, nullable=False),  # JSON: test id -> latest execution status (or null)
)
Index("ix_purple_snap_created", purple_snapshots.c.created_at, purple_snapshots.c.id)

purple_tabletops = Table(
    "purple_tabletops",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("scenario", Text, nullable=False),
    Column("participants", Text, nullable=False, default="[]"),
    Column("created_by", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("steps", Integer, nullable=False, default=0),
)
Index("ix_purple_tabletop_created", purple_tabletops.c.created_at, purple_tabletops.c.id)

purple_tabletop_steps = Table(
    "purple_tabletop_steps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tabletop_id", String(36), nullable=False),
    Column("position", Integer, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", Text, nullable=False),
    Column("expected_detection", String(256), nullable=False, default=""),
    Column("notes", Text, nullable=False, default=""),
    Column("created_by", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tabletop_id", "position", name="uq_purple_step_position"),
)
