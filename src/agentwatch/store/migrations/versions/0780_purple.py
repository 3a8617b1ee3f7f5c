"""purple: atomic-test executions, coverage snapshots, tabletop sessions and steps

Revision ID: 0780_purple
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0780_purple"
down_revision = "0002_alerts"
branch_labels = ("purple",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purple_executions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("test_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(128), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("timeout_s", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("events_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("event_ids", sa.Text, nullable=False, server_default="[]"),
        sa.Column("results", sa.Text, nullable=False, server_default="[]"),
        sa.Column("unexpected", sa.Text, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_purple_exec_created", "purple_executions", ["created_at", "id"])
    op.create_index("ix_purple_exec_test", "purple_executions", ["test_id", "created_at"])
    op.create_table(
        "purple_snapshots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("label", sa.String(128), nullable=False, server_default=""),
        sa.Column("rules", sa.Integer, nullable=False),
        sa.Column("techniques", sa.Text, nullable=False),
        sa.Column("tests", sa.Text, nullable=False),
    )
    op.create_index("ix_purple_snap_created", "purple_snapshots", ["created_at", "id"])
    op.create_table(
        "purple_tabletops",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("participants", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_purple_tabletop_created", "purple_tabletops", ["created_at", "id"])
    op.create_table(
        "purple_tabletop_steps",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tabletop_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("expected_detection", sa.String(256), nullable=False, server_default=""),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tabletop_id", "position", name="uq_purple_step_position"),
    )


def downgrade() -> None:
    op.drop_table("purple_tabletop_steps")
    op.drop_table("purple_tabletops")
    op.drop_table("purple_snapshots")
    op.drop_index("ix_purple_exec_test", "purple_executions")
    op.drop_index("ix_purple_exec_created", "purple_executions")
    op.drop_table("purple_executions")
