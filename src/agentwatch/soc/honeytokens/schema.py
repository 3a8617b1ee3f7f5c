"""The tables of the honeytokens capability (Alembic branch ``honeytokens``, revision
0710_honeytokens): the tokens (their secret held only as SHA-256 digests, see
:mod:`agentwatch.soc.honeytokens.generate`) and every touch of one."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

honeytokens = Table(
    "honeytokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("style", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("location", String(512), nullable=False, default=""),
    Column("username", String(64)),  # credential: the user name is no secret
    Column("hint", String(160), nullable=False),  # the value's shape and first characters, for people
    Column("needles", Text, nullable=False),  # JSON list of the SHA-256 hex digests of its secret parts
    Column("track_digest", String(64)),  # url: SHA-256 of the tracking id in its URL
    Column("status", String(16), nullable=False),  # active | revoked
    Column("created_at", Float, nullable=False),
    Column("created_by", String(256), nullable=False, default=""),
    Column("revoked_at", Float),
    Column("revoked_by", String(256)),
    Column("touches", Integer, nullable=False, default=0),
    Column("last_touched_at", Float),
)
Index("ix_honeytokens_created", honeytokens.c.created_at, honeytokens.c.id)
Index("ix_honeytokens_track", honeytokens.c.track_digest)

honeytoken_events = Table(
    "honeytoken_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_id", String(36), nullable=False),
    Column("ts", Float, nullable=False),
    Column("source", String(16), nullable=False),  # track | pipeline
    Column("event_id", String(128)),  # pipeline: the stored event holding the token
    Column("event_type", String(128)),
    Column("location", String(256), nullable=False),  # the field holding it, or the tracking route
    Column("client", String(64)),  # track: the client address
    Column("user_agent", String(256)),
    Column("session_id", String(256)),
    Column("agent", String(256)),
    Column("host", String(256)),
    Column("alert_id", String(36)),
)
Index("ix_honeytoken_events_ts", honeytoken_events.c.ts, honeytoken_events.c.id)
Index("ix_honeytoken_events_token", honeytoken_events.c.token_id, honeytoken_events.c.ts)
