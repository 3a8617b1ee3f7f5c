"""sso: the accounts sign-on created

Revision ID: 0801_sso_accounts
Revises: 0800_sso
"""

import sqlalchemy as sa
from alembic import op

revision = "0801_sso_accounts"
down_revision = "0800_sso"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_accounts",
        sa.Column("user_id", sa.String(36), primary_key=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sso_accounts")
