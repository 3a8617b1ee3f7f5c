"""copilot: actions offered by the copilot

Revision ID: 0850_copilot
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0850_copilot"
down_revision = "0001_foundation"
branch_labels = ("copilot",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "copilot_actions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("resource", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float),
    )
    op.create_index("ix_copilot_actions_expires", "copilot_actions", ["expires_at"])
    op.create_index("ix_copilot_actions_principal", "copilot_actions", ["principal", "created_at"])


def downgrade() -> None:
    op.drop_table("copilot_actions")
