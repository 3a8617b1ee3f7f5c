"""sla: an index on alerts.created_at, the range each SLA pass reads

Revision ID: 0761_sla_alert_age
Revises: 0760_sla
"""

from alembic import op

revision = "0761_sla_alert_age"
down_revision = "0760_sla"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alerts_created", "alerts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_created", table_name="alerts")
