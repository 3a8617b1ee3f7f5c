"""SQLite: a trace index written behind the commits instead of an index on events.trace_id

Revision ID: 0005_trace_index
Revises: 0004_alerts_assignee

Trace ids are random: each event's entry in ``ix_events_trace`` landed on a page of its own,
and SQLite's write-ahead log takes whole pages, so every event rewrote one page of that index
at its commit (measured: 8 of the 13.5 us a row cost to insert). On SQLite the index goes, and
``trace_index`` is filled from the events in large sorted runs (``store.trace_index``). The
table is made on PostgreSQL too, where it stays empty: the index there is kept.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_trace_index"
down_revision = "0004_alerts_assignee"
branch_labels = None
depends_on = None

THROUGH = "trace_index.through"


def upgrade() -> None:
    op.create_table(
        "trace_index",
        sa.Column("trace_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sqlite_with_rowid=False,
    )
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "INSERT INTO trace_index (trace_id, seq)"
        " SELECT trace_id, seq FROM events WHERE trace_id IS NOT NULL ORDER BY trace_id, seq"
    )
    op.execute(  # a store without events has nothing indexed: no row (read as 0)
        f"INSERT OR REPLACE INTO kv (key, value) SELECT '{THROUGH}', CAST(max(seq) AS TEXT) FROM events"  # noqa: S608
        " HAVING max(seq) IS NOT NULL"
    )
    op.drop_index("ix_events_trace", "events")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_events_trace", "events", ["trace_id"])
        op.execute(f"DELETE FROM kv WHERE key = '{THROUGH}'")  # noqa: S608
    op.drop_table("trace_index")
