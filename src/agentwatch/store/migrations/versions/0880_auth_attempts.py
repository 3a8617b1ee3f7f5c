"""auth: failed sign-in attempts counted in the store, shared by every process and node

Revision ID: 0880_auth_attempts
Revises: 0100_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0880_auth_attempts"
down_revision = "0100_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_attempts",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("window_index", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("reset_at", sa.Float, nullable=False),
    )
    op.create_index("ix_auth_attempts_reset", "auth_attempts", ["reset_at"])


def downgrade() -> None:
    op.drop_table("auth_attempts")
