"""The tables of the foundation. Other capabilities add their own tables in their
own modules on the same ``metadata`` and their own Alembic revisions."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("event_type", String(128), nullable=False),
    Column("ts", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("source_format", String(32), nullable=False),
    Column("session_id", String(256)),
    Column("parent_session_id", String(256)),
    Column("sequence", BigInteger),
    Column("agent", String(256)),
    Column("severity", Integer, nullable=False, default=0),
    Column("host", String(256)),
    Column("pid", BigInteger),
    Column("ppid", BigInteger),
    Column("process_name", String(256)),
    Column("trace_id", String(64)),
    Column("entity_ids", Text, nullable=False, default=""),
    Column("entities", Text, nullable=False, default="[]"),
    Column("body", Text, nullable=False),
    Column("raw", LargeBinary),
)
Index("ix_events_type_ts", events.c.event_type, events.c.ts)
Index("ix_events_ts", events.c.ts)
Index("ix_events_process", events.c.process_name)
# PostgreSQL indexes events.trace_id in place; SQLite keeps trace_index (below) instead, filled
# behind the commits (``store.trace_index``): trace ids are random, and in SQLite's log each
# random index entry rewrote a whole page per event.
Index("ix_events_trace", events.c.trace_id).ddl_if(dialect="postgresql")
# What exists on one store only (``ddl_if`` above): name -> the dialect that has it.
ONE_STORE_ONLY = {"ix_events_trace": "postgresql"}
Index("ix_events_session", events.c.session_id, events.c.sequence)

processes = Table(
    "processes",
    metadata,
    Column("host", String(256), primary_key=True),
    Column("pid", BigInteger, primary_key=True),
    Column("ppid", BigInteger),
    Column("name", String(256)),
    Column("exe", Text),
    Column("cmdline", Text),
    Column("start_time", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("exited_at", Float),
    Column("event_count", BigInteger, nullable=False, default=0),
    Column("trace_id", String(64)),
)

counters = Table(
    "counters",
    metadata,
    Column("family", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Float, nullable=False, default=0),
)
# A family's largest totals first (store.counters reads the top of each family; revision 0003)
Index("ix_counters_top", counters.c.family, counters.c.value.desc(), counters.c.key)

kv = Table(
    "kv",
    metadata,
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
)

# SQLite only (empty on PostgreSQL): the seqs of each trace's events, up to the seq that
# kv ``trace_index.through`` names; later events are found by their trace_id column.
trace_index = Table(
    "trace_index",
    metadata,
    Column("trace_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    sqlite_with_rowid=False,
)
