"""alerts

Revision ID: 0002_alerts
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_alerts"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dedup_key", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("detector", sa.String(128), nullable=False),
        sa.Column("rule_id", sa.String(256), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="open"),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("session_id", sa.String(256)),
        sa.Column("entity_ids", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("body", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_alerts_dedup", "alerts", ["dedup_key", "last_seen"])
    op.create_index("ix_alerts_last_seen", "alerts", ["last_seen"])
    op.create_index("ix_alerts_session", "alerts", ["session_id"])
    op.create_index("ix_alerts_type", "alerts", ["type", "last_seen"])


def downgrade() -> None:
    op.drop_table("alerts")
