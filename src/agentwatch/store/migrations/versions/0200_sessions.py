"""sessions: derived AOP sessions and the session rules' state

Revision ID: 0200_sessions
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0200_sessions"
down_revision = "0002_alerts"
branch_labels = ("sessions",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aop_sessions",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("agent_version", sa.String(64)),
        sa.Column("parent_session_id", sa.String(128)),
        sa.Column("goal", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("last_event_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("event_steps", sa.Integer, nullable=False),
        sa.Column("reported_steps", sa.Integer, nullable=False),
        sa.Column("reported_tokens", sa.Float, nullable=False),
        sa.Column("summed_tokens", sa.Float, nullable=False),
        sa.Column("reported_cost", sa.Float),
        sa.Column("summed_cost", sa.Float),
        sa.Column("max_sequence", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_aop_sessions_last_seen", "aop_sessions", ["last_seen_at"])
    op.create_index("ix_aop_sessions_parent", "aop_sessions", ["parent_session_id"])
    op.create_index("ix_aop_sessions_status", "aop_sessions", ["status", "last_seen_at"])
    op.create_index("ix_aop_sessions_agent", "aop_sessions", ["agent_id", "last_seen_at"])
    op.create_table(
        "aop_rule_state",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("aop_rule_state")
    op.drop_table("aop_sessions")
