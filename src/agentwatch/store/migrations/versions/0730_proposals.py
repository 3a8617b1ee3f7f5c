"""proposals: detection-as-code proposals, their comments, evals and eval baselines

Revision ID: 0730_proposals
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0730_proposals"
down_revision = "0002_alerts"
branch_labels = ("proposals",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_proposals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("logic", sa.Text, nullable=False),
        sa.Column("logic_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("rule_id", sa.String(256), nullable=False),
        sa.Column("mitre_tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("test_cases", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("author_person", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("decided_by", sa.String(256)),
        sa.Column("decided_at", sa.Float),
        sa.Column("decision_reason", sa.Text),
        sa.Column("approved_logic_version", sa.Integer),
        sa.Column("promoted_rule_id", sa.String(256)),
        sa.Column("promoted_by", sa.String(256)),
        sa.Column("promoted_at", sa.Float),
    )
    op.create_index("ix_detection_proposals_created", "detection_proposals", ["created_at", "id"])
    op.create_index("ix_detection_proposals_status", "detection_proposals", ["status", "created_at"])
    op.create_table(
        "detection_proposal_comments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("proposal_id", sa.String(36), nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_detection_proposal_comments", "detection_proposal_comments", ["proposal_id", "created_at"])
    op.create_table(
        "detection_proposal_evals",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("proposal_id", sa.String(36), nullable=False),
        sa.Column("logic_version", sa.Integer, nullable=False),
        sa.Column("logic_sha256", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("external", sa.Text, nullable=False, server_default="{}"),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_detection_proposal_evals", "detection_proposal_evals", ["proposal_id", "created_at"])
    op.create_table(
        "detection_proposal_baselines",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_detection_proposal_baselines", "detection_proposal_baselines", ["created_at"])


def downgrade() -> None:
    op.drop_table("detection_proposal_baselines")
    op.drop_table("detection_proposal_evals")
    op.drop_table("detection_proposal_comments")
    op.drop_table("detection_proposals")
