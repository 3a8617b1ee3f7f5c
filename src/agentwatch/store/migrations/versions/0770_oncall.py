"""oncall: on-call rotations

Revision ID: 0770_oncall
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0770_oncall"
down_revision = "0001_foundation"
branch_labels = ("oncall",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oncall_rotations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_oncall_rotations_created", "oncall_rotations", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("oncall_rotations")
