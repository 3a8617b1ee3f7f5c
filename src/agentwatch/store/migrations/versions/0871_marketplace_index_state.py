"""marketplace: what each remote index source showed last (replay protection across restarts)

Revision ID: 0871_marketplace_index_state
Revises: 0870_marketplace
"""

import sqlalchemy as sa
from alembic import op

revision = "0871_marketplace_index_state"
down_revision = "0870_marketplace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marketplace_index_state",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("versions", sa.Text, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("marketplace_index_state")
