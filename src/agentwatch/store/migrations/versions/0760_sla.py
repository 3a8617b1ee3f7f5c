"""sla: alert service-level targets, acknowledgement marks and breaches

Revision ID: 0760_sla
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0760_sla"
down_revision = "0002_alerts"
branch_labels = ("sla",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_configs",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("acknowledge_minutes", sa.Integer, nullable=False),
        sa.Column("resolve_minutes", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("effective_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(256)),
    )
    op.create_table(
        "sla_marks",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("acknowledged_at", sa.Float),
        sa.Column("closed_at", sa.Float),
    )
    op.create_table(
        "sla_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("band", sa.String(16), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("limit_minutes", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("breached_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("end_reason", sa.String(16)),
    )
    op.create_index("ix_sla_events_breached", "sla_events", ["breached_at", "id"])
    op.create_index("ix_sla_events_running", "sla_events", ["ended_at"])
    op.create_index("ix_sla_events_alert", "sla_events", ["alert_id", "kind"], unique=True)


def downgrade() -> None:
    op.drop_table("sla_events")
    op.drop_table("sla_marks")
    op.drop_table("sla_configs")
