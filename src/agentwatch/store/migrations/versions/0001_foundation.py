"""foundation: events, processes, counters, kv

Revision ID: 0001_foundation
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = ("foundation",)
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("source_format", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(256)),
        sa.Column("parent_session_id", sa.String(256)),
        sa.Column("sequence", sa.BigInteger),
        sa.Column("agent", sa.String(256)),
        sa.Column("severity", sa.Integer, nullable=False, server_default="0"),
        sa.Column("host", sa.String(256)),
        sa.Column("pid", sa.BigInteger),
        sa.Column("ppid", sa.BigInteger),
        sa.Column("process_name", sa.String(256)),
        sa.Column("trace_id", sa.String(64)),
        sa.Column("entity_ids", sa.Text, nullable=False, server_default=""),
        sa.Column("entities", sa.Text, nullable=False, server_default="[]"),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("raw", sa.LargeBinary),
    )
    op.create_index("ix_events_type_ts", "events", ["event_type", "ts"])
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_process", "events", ["process_name"])
    op.create_index("ix_events_trace", "events", ["trace_id"])
    op.create_index("ix_events_session", "events", ["session_id", "sequence"])
    op.create_table(
        "processes",
        sa.Column("host", sa.String(256), primary_key=True),
        sa.Column("pid", sa.BigInteger, primary_key=True),
        sa.Column("ppid", sa.BigInteger),
        sa.Column("name", sa.String(256)),
        sa.Column("exe", sa.Text),
        sa.Column("cmdline", sa.Text),
        sa.Column("start_time", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("exited_at", sa.Float),
        sa.Column("event_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("trace_id", sa.String(64)),
    )
    op.create_table(
        "counters",
        sa.Column("family", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )
    op.create_table(
        "kv",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("kv", "counters", "processes", "events"):
        op.drop_table(name)
