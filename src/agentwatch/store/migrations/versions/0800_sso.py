"""sso: pending sign-ons and used SAML assertion ids

Revision ID: 0800_sso
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0800_sso"
down_revision = "0001_foundation"
branch_labels = ("sso",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sso_requests",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False, server_default=""),
        sa.Column("verifier", sa.String(128), nullable=False, server_default=""),
        sa.Column("binding", sa.String(64), nullable=False, server_default=""),
        sa.Column("extra", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_sso_requests_expires", "sso_requests", ["expires_at"])
    op.create_table(
        "sso_assertions",
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_sso_assertions_expires", "sso_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sso_assertions")
    op.drop_table("sso_requests")
