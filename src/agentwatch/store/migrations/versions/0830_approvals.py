"""approvals: approval requests (four-eyes), and the approval gate of response playbooks

Revision ID: 0830_approvals
Revises: 0720_playbooks

It revises the playbooks revision, not the foundation, because it adds two columns to the
playbook tables (a playbook may require approval; a held run names its request), so those
tables must exist first. (``depends_on`` would order it too, but Alembic then keeps the
playbooks revision out of ``alembic_version`` while still counting it a head, and every start
would find the store "behind".)
"""

import sqlalchemy as sa
from alembic import op

revision = "0830_approvals"
down_revision = "0720_playbooks"
branch_labels = ("approvals",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("action", sa.String(512), nullable=False),
        sa.Column("gated", sa.Text),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("decided_by", sa.String(256)),
        sa.Column("decided_at", sa.Float),
        sa.Column("comment", sa.Text),
        sa.Column("outcome", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_approval_requests_created", "approval_requests", ["created_at", "id"])
    op.create_index("ix_approval_requests_status", "approval_requests", ["status", "created_at", "id"])
    op.create_index("ix_approval_requests_expiry", "approval_requests", ["status", "expires_at"])
    op.add_column("playbooks", sa.Column("requires_approval", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("playbook_runs", sa.Column("approval_id", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("playbook_runs") as batch:
        batch.drop_column("approval_id")
    with op.batch_alter_table("playbooks") as batch:
        batch.drop_column("requires_approval")
    op.drop_table("approval_requests")
