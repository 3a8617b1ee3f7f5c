"""push: Web Push subscriptions

Revision ID: 0820_push
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0820_push"
down_revision = "0001_foundation"
branch_labels = ("push",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("endpoint_hash", sa.String(64), nullable=False),
        sa.Column("p256dh", sa.String(128), nullable=False),
        sa.Column("auth", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("device_name", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_sent_at", sa.Float, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.UniqueConstraint("owner", "endpoint_hash", name="uq_push_subscriptions_owner_endpoint"),
    )
    op.create_index("ix_push_subscriptions_owner", "push_subscriptions", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_table("push_subscriptions")
