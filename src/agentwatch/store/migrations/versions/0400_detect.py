"""detect: alert feedback, uploaded rules and enable flags, hourly rule fire counts

Revision ID: 0400_detect
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0400_detect"
down_revision = "0002_alerts"
branch_labels = ("detect",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("feedback", sa.String(8), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("origin", sa.String(64), nullable=False, server_default="api"),
        sa.Column("principal", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_alert_feedback_alert", "alert_feedback", ["alert_id", "created_at"])
    op.create_table(
        "detect_rules",
        sa.Column("rule_id", sa.String(256), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False, server_default="sigma"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("uploaded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("yaml", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "rule_fires",
        sa.Column("rule_id", sa.String(256), primary_key=True),
        sa.Column("hour", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_rule_fires_hour", "rule_fires", ["hour"])


def downgrade() -> None:
    op.drop_table("rule_fires")
    op.drop_table("detect_rules")
    op.drop_table("alert_feedback")
