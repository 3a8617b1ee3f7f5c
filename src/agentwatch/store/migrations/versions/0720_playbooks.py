"""playbooks: response playbooks and their runs

Revision ID: 0720_playbooks
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0720_playbooks"
down_revision = "0002_alerts"
branch_labels = ("playbooks",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "playbooks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_playbooks_created", "playbooks", ["created_at", "id"])
    op.create_table(
        "playbook_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("playbook_id", sa.String(36), nullable=False),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_by", sa.String(256), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("auto_key", sa.String(101), unique=True),
        sa.Column("steps", sa.Text, nullable=False, server_default="[]"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_playbook_runs_playbook", "playbook_runs", ["playbook_id", "started_at", "id"])


def downgrade() -> None:
    op.drop_table("playbook_runs")
    op.drop_table("playbooks")
