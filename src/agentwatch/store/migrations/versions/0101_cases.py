"""cases: cases, their linked alerts, comments and timeline (soc capability)

Revision ID: 0101_cases
Revises: 0100_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0101_cases"
down_revision = "0100_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("severity", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128)),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float),
    )
    op.create_index("ix_cases_created", "cases", ["created_at", "id"])
    op.create_table(
        "case_alerts",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_index("ix_case_alerts_alert", "case_alerts", ["alert_id"])
    op.create_table(
        "case_comments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_case_comments_case", "case_comments", ["case_id", "created_at"])
    op.create_table(
        "case_timeline",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("fields", sa.Text, nullable=False, server_default="[]"),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_case_timeline_case", "case_timeline", ["case_id", "ts"])


def downgrade() -> None:
    for table in ("case_timeline", "case_comments", "case_alerts", "cases"):
        op.drop_table(table)
