"""investigations: the AI investigator's investigations and their hash-chained ledger

Revision ID: 0840_investigations
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0840_investigations"
down_revision = "0001_foundation"
branch_labels = ("investigations",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "investigations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("active_case", sa.String(36), unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_by", sa.String(256), nullable=False),
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("model", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("steps", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("entries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("report", sa.Text),
    )
    op.create_index("ix_investigations_case", "investigations", ["case_id", "created_at"])
    op.create_table(
        "investigation_entries",
        sa.Column("investigation_id", sa.String(36), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("inv_created_at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_investigation_entries_case",
        "investigation_entries",
        ["case_id", "inv_created_at", "investigation_id", "seq"],
    )


def downgrade() -> None:
    op.drop_table("investigation_entries")
    op.drop_table("investigations")
