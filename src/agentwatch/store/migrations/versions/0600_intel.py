"""intel: indicators of compromise

Revision ID: 0600_intel
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0600_intel"
down_revision = "0001_foundation"
branch_labels = ("intel",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intel_iocs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index("ix_intel_iocs_created", "intel_iocs", ["created_at", "id"])
    op.create_index("ix_intel_iocs_kind", "intel_iocs", ["kind"])


def downgrade() -> None:
    op.drop_table("intel_iocs")
