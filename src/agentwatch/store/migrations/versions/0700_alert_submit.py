"""alert_submit: idempotency keys of POST /api/v1/alerts/submit

Revision ID: 0700_alert_submit
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0700_alert_submit"
down_revision = "0002_alerts"
branch_labels = ("alert_submit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_submit_keys",
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("status", sa.Integer),
        sa.Column("answer", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("principal", "key", name="pk_alert_submit_keys"),
    )
    op.create_index("ix_alert_submit_keys_created", "alert_submit_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("alert_submit_keys")
