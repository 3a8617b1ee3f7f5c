"""compliance: uploaded evidence for the controls of the compliance library

Revision ID: 0790_compliance
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0790_compliance"
down_revision = "0001_foundation"
branch_labels = ("compliance",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compliance_evidence",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("framework", sa.String(64), nullable=False),
        sa.Column("control_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("url", sa.Text),
        sa.Column("doc_name", sa.String(200)),
        sa.Column("doc_type", sa.String(64)),
        sa.Column("doc_size", sa.Integer),
        sa.Column("doc_sha256", sa.String(64)),
        sa.Column("document", sa.LargeBinary),
        sa.Column("uploaded_by", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_compliance_evidence_control", "compliance_evidence", ["control_id", "created_at"])
    op.create_index("ix_compliance_evidence_created", "compliance_evidence", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("compliance_evidence")
