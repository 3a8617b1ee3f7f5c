"""honeytokens: canary secrets and their touches

Revision ID: 0710_honeytokens
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0710_honeytokens"
down_revision = "0002_alerts"
branch_labels = ("honeytokens",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "honeytokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("style", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("location", sa.String(512), nullable=False, server_default=""),
        sa.Column("username", sa.String(64)),
        sa.Column("hint", sa.String(160), nullable=False),
        sa.Column("needles", sa.Text, nullable=False),
        sa.Column("track_digest", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("revoked_at", sa.Float),
        sa.Column("revoked_by", sa.String(256)),
        sa.Column("touches", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_touched_at", sa.Float),
    )
    op.create_index("ix_honeytokens_created", "honeytokens", ["created_at", "id"])
    op.create_index("ix_honeytokens_track", "honeytokens", ["track_digest"])
    op.create_table(
        "honeytoken_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_id", sa.String(36), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(128)),
        sa.Column("event_type", sa.String(128)),
        sa.Column("location", sa.String(256), nullable=False),
        sa.Column("client", sa.String(64)),
        sa.Column("user_agent", sa.String(256)),
        sa.Column("session_id", sa.String(256)),
        sa.Column("agent", sa.String(256)),
        sa.Column("host", sa.String(256)),
        sa.Column("alert_id", sa.String(36)),
    )
    op.create_index("ix_honeytoken_events_ts", "honeytoken_events", ["ts", "id"])
    op.create_index("ix_honeytoken_events_token", "honeytoken_events", ["token_id", "ts"])


def downgrade() -> None:
    op.drop_table("honeytoken_events")
    op.drop_table("honeytokens")
