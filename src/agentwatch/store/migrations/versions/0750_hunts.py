"""hunts: runs of hunt-as-code definitions and the per-hunt run lease

Revision ID: 0750_hunts
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0750_hunts"
down_revision = "0001_foundation"
branch_labels = ("hunts",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hunt_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("hunt_id", sa.String(64), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("query_total", sa.Integer, nullable=False),
        sa.Column("scanned", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("alert_id", sa.String(36)),
        sa.Column("error", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_hunt_runs_hunt", "hunt_runs", ["hunt_id", "started_at"])
    op.create_table(
        "hunt_leases",
        sa.Column("hunt_id", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hunt_leases")
    op.drop_table("hunt_runs")
