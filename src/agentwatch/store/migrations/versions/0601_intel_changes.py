"""intel: the change log of the indicators, read by the other nodes sharing the store

Revision ID: 0601_intel_changes
Revises: 0600_intel

A new table: nothing existing is rewritten. A node starting on it rebuilds its index once (as
at every start) and follows the log from there. The stored version the nodes compared before
(kv ``intel:version``) is read by no one any more and is deleted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0601_intel_changes"
down_revision = "0600_intel"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "intel_changes",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("ioc_id", sa.String(36), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_intel_changes_at", "intel_changes", ["at"])
    op.execute(sa.text("DELETE FROM kv WHERE key = 'intel:version'"))


def downgrade() -> None:
    op.drop_table("intel_changes")
