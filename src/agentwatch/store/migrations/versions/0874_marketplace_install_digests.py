"""marketplace: what each rule an installed detection made looked like when it was installed

Revision ID: 0874_marketplace_install_digests
Revises: 0873_marketplace_last_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0874_marketplace_install_digests"
down_revision = "0873_marketplace_last_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("marketplace_installs", sa.Column("rule_marks", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("marketplace_installs") as batch:
        batch.drop_column("rule_marks")
