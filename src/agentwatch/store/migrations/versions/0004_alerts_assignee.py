"""alerts: the analyst an alert is assigned to

Revision ID: 0004_alerts_assignee
Revises: 0003_counters_top

A nullable column: existing alerts stay unassigned, and adding it rewrites no row (neither
SQLite nor PostgreSQL copies the table for a nullable column without a default).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_alerts_assignee"
down_revision = "0003_counters_top"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("assignee", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("assignee")
