"""ueba: per-entity baselines and the anomalies scored against them

Revision ID: 0740_ueba
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0740_ueba"
down_revision = "0002_alerts"
branch_labels = ("ueba",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ueba_baselines",
        sa.Column("entity_id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ueba_baselines_last_seen", "ueba_baselines", ["last_seen", "entity_id"])
    op.create_table(
        "ueba_anomalies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("entity_id", sa.String(36), nullable=False),
        sa.Column("entity_type", sa.String(16), nullable=False),
        sa.Column("entity_value", sa.String(512), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("kinds", sa.String(64), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("event_ids", sa.Text, nullable=False),
        sa.Column("alert_id", sa.String(36)),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_ueba_anomalies_ts", "ueba_anomalies", ["ts", "id"])
    op.create_index("ix_ueba_anomalies_entity", "ueba_anomalies", ["entity_id", "ts"])


def downgrade() -> None:
    op.drop_table("ueba_anomalies")
    op.drop_table("ueba_baselines")
