"""marketplace: every rule an installed detection made

Revision ID: 0872_marketplace_install_rules
Revises: 0871_marketplace_index_state
"""

import sqlalchemy as sa
from alembic import op

revision = "0872_marketplace_install_rules"
down_revision = "0871_marketplace_index_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("marketplace_installs", sa.Column("resource_ids", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("marketplace_installs") as batch:
        batch.drop_column("resource_ids")
