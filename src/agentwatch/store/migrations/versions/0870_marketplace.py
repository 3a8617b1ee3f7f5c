"""marketplace: installed marketplace items

Revision ID: 0870_marketplace
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0870_marketplace"
down_revision = "0001_foundation"
branch_labels = ("marketplace",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marketplace_installs",
        sa.Column("slug", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(256), nullable=False),
        sa.Column("installed_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("installed_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("marketplace_installs")
