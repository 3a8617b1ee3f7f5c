"""The Web Push tables (Alembic branch ``push``, revisions 0820_push and 0821_push_vapid).

One row per (owner, endpoint): the browser's push endpoint, its P-256 public key (``p256dh``)
and auth secret (base64url, as the browser gives them), who registered it (``user:<id>``, or
``local:local`` without authentication) and what the last push got back.

``push_vapid``: the server's VAPID key pair, one row (id 1), so every node of a cluster signs
with the same key; the primary key makes the first node to start the only one to create it."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from agentwatch.store.schema import metadata

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(300), nullable=False),
    Column("endpoint", Text, nullable=False),
    Column("endpoint_hash", String(64), nullable=False),
    Column("p256dh", String(128), nullable=False),
    Column("auth", String(64), nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("device_name", String(128), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("last_sent_at", Float, nullable=True),
    Column("last_status", Integer, nullable=True),
    UniqueConstraint("owner", "endpoint_hash", name="uq_push_subscriptions_owner_endpoint"),
)
Index("ix_push_subscriptions_owner", push_subscriptions.c.owner, push_subscriptions.c.created_at)

push_vapid = Table(
    "push_vapid",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("private_key", Text, nullable=False),  # PKCS#8 PEM
    Column("created_at", Float, nullable=False),
)
