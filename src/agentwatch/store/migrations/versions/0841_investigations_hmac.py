"""investigations: the seal (HMAC) of each ledger's head, NULL on ledgers written before it

Revision ID: 0841_investigations_hmac
Revises: 0840_investigations
"""

import sqlalchemy as sa
from alembic import op

revision = "0841_investigations_hmac"
down_revision = "0840_investigations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("investigations", sa.Column("head_mac", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("investigations") as batch:
        batch.drop_column("head_mac")
