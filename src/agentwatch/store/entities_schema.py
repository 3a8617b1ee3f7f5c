"""The entity index (Alembic branch ``entities``, revision 0500_entities): one row per entity
ever named by a stored event, kept by ``agentwatch.entities.index`` in the events' own commit.

``folded`` is ``value`` with the letters A-Z folded to a-z (the same rule as the event search),
so a search matches without regard to ASCII case the same way on both stores. It is compared
byte by byte (PostgreSQL: the "C" collation), so a prefix is one range of its index.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table

from agentwatch.store.schema import metadata

VALUE_WIDTH = 512  # agentwatch.events.entities.MAX_VALUE: longer values are never indexed
BYTEWISE = String(VALUE_WIDTH).with_variant(String(VALUE_WIDTH, collation="C"), "postgresql")

entities = Table(
    "entities",
    metadata,
    Column("id", String(36), primary_key=True),  # the UUID5 of type and value (events.entities)
    Column("type", String(16), nullable=False),
    Column("value", String(VALUE_WIDTH), nullable=False),
    Column("folded", BYTEWISE, nullable=False),
    Column("first_seen", Float, nullable=False),  # event time of the earliest event naming it
    Column("last_seen", Float, nullable=False),  # ... and of the latest
    Column("event_count", BigInteger, nullable=False, default=0),
)
Index("ix_entities_folded", entities.c.folded)
Index("ix_entities_last_seen", entities.c.last_seen)
