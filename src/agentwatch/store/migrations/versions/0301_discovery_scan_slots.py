"""discovery: the running scan of each tenant, claimed in the store

Revision ID: 0301_discovery_scan_slots
Revises: 0300_discovery

Several processes (``serve --processes``) and API nodes share one store; the tenant's running
scan is the ``scan_id`` of its row here, set by one conditional UPDATE, so only one of them can
run it. The owning process refreshes ``heartbeat_at`` and the progress while it scans; a row
whose heartbeat stopped lost its process and is taken over (see ``agentwatch.discovery.slots``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0301_discovery_scan_slots"
down_revision = "0300_discovery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discovery_scan_slots",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("scan_id", sa.String(36)),
        sa.Column("owner", sa.String(32)),
        sa.Column("target", sa.Text),
        sa.Column("detectors", sa.Text),
        sa.Column("started_at", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("stop_requested", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hosts_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hosts_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("agents_found", sa.Integer, nullable=False, server_default="0"),
        sa.Column("scheduled_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("discovery_scan_slots")
