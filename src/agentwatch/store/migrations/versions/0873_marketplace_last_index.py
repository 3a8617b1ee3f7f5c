"""marketplace: the last remote index accepted from each source, listed until a fetch succeeds

Revision ID: 0873_marketplace_last_index
Revises: 0872_marketplace_install_rules
"""

import sqlalchemy as sa
from alembic import op

revision = "0873_marketplace_last_index"
down_revision = "0872_marketplace_install_rules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("marketplace_index_state", sa.Column("document", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("marketplace_index_state") as batch:
        batch.drop_column("document")
