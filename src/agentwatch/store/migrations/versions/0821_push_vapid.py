"""push: the VAPID key pair in the store, shared by every node

Revision ID: 0821_push_vapid
Revises: 0820_push
"""

import sqlalchemy as sa
from alembic import op

revision = "0821_push_vapid"
down_revision = "0820_push"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_vapid",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("private_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("push_vapid")
