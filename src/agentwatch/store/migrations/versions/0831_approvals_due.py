"""approvals: an approved request records that its held action is due until it is started

Revision ID: 0831_approvals_due
Revises: 0830_approvals

``due_at`` is set by the decision's own transaction when a request holding an action is
approved, and cleared by the transaction that starts that action. A node killed between the
two leaves it set: a server starting on the store, or another node's approvals watch, starts
the action then (see ``agentwatch.soc.approvals.decisions``).
"""

import sqlalchemy as sa
from alembic import op

revision = "0831_approvals_due"
down_revision = "0830_approvals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("due_at", sa.Float))
    op.create_index("ix_approval_requests_due", "approval_requests", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_approval_requests_due", table_name="approval_requests")
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_column("due_at")
