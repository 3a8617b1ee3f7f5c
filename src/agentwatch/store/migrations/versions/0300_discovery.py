"""discovery: scans and the agent inventory

Revision ID: 0300_discovery
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0300_discovery"
down_revision = "0002_alerts"
branch_labels = ("discovery",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discovery_scans",
        sa.Column("scan_id", sa.String(36), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, server_default="default"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("completed_at", sa.Float),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total_agents", sa.Integer, nullable=False, server_default="0"),
        sa.Column("body", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_discovery_scans_started", "discovery_scans", ["tenant", "started_at"])
    op.create_table(
        "discovery_agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("protocol", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("last_scan_id", sa.String(36)),
        sa.Column("gone", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""),
        sa.Column("body", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_discovery_agents_last_seen", "discovery_agents", ["last_seen"])
    op.create_index("ix_discovery_agents_address", "discovery_agents", ["address", "port"])


def downgrade() -> None:
    op.drop_table("discovery_agents")
    op.drop_table("discovery_scans")
