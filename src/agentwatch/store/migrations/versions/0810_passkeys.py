"""passkeys: WebAuthn credentials and pending ceremony challenges

Revision ID: 0810_passkeys
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0810_passkeys"
down_revision = "0001_foundation"
branch_labels = ("passkeys",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passkeys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("credential_id", sa.String(1400), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("sign_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("name", sa.String(64), nullable=False, server_default=""),
        sa.Column("transports", sa.Text, nullable=False, server_default="[]"),
        sa.Column("aaguid", sa.String(36), nullable=False, server_default=""),
        sa.Column("backed_up", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_used_at", sa.Float),
    )
    op.create_index("ix_passkeys_user", "passkeys", ["user_id", "created_at"])
    op.create_table(
        "passkey_challenges",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("ix_passkey_challenges_user", "passkey_challenges", ["user_id", "created_at"])
    op.create_index("ix_passkey_challenges_expires", "passkey_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("passkey_challenges")
    op.drop_table("passkeys")
