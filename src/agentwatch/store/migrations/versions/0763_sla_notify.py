"""sla: the outbox of each breach's notice

Revision ID: 0763_sla_notify
Revises: 0762_sla_lives

``sla_events`` gets the state of its notice (``notify_state``, ``notify_attempts``,
``notify_after``, ``notify_claim``, ``notified_at``, ``notify_error``). The breaches recorded
before are marked ``off``: they were recorded when no notice was sent, and turning notices on
must not send the whole history.
"""

import sqlalchemy as sa
from alembic import op

revision = "0763_sla_notify"
down_revision = "0762_sla_lives"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_events", sa.Column("notify_state", sa.String(16), nullable=True))
    op.add_column("sla_events", sa.Column("notify_attempts", sa.Integer, nullable=False, server_default="0"))
    op.add_column("sla_events", sa.Column("notify_after", sa.Float, nullable=True))
    op.add_column("sla_events", sa.Column("notify_claim", sa.String(36), nullable=True))
    op.add_column("sla_events", sa.Column("notified_at", sa.Float, nullable=True))
    op.add_column("sla_events", sa.Column("notify_error", sa.String(256), nullable=True))
    op.execute("UPDATE sla_events SET notify_state = 'off'")
    op.create_index("ix_sla_events_notify", "sla_events", ["notify_state", "notify_after"])


def downgrade() -> None:
    op.drop_index("ix_sla_events_notify", table_name="sla_events")
    with op.batch_alter_table("sla_events") as batch:
        for column in (
            "notify_error",
            "notified_at",
            "notify_claim",
            "notify_after",
            "notify_attempts",
            "notify_state",
        ):
            batch.drop_column(column)
