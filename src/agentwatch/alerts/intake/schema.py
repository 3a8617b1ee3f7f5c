"""The idempotency keys of ``POST /api/v1/alerts/submit`` (branch ``alert_submit``, revision
0700_alert_submit).

One row per caller and ``Idempotency-Key``: the SHA-256 of the body it came with, whether
its request is still being processed (``pending``) or finished (``done``, with the status and
JSON answer given), so a retry is answered from here, across restarts, until the row ages out.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, PrimaryKeyConstraint, String, Table, Text

from agentwatch.store.schema import metadata

alert_submit_keys = Table(
    "alert_submit_keys",
    metadata,
    Column("principal", String(200), nullable=False),  # who sent it: keys are per caller
    Column("key", String(128), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("state", String(8), nullable=False),  # pending | done
    Column("status", Integer),
    Column("answer", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("principal", "key", name="pk_alert_submit_keys"),
)
Index("ix_alert_submit_keys_created", alert_submit_keys.c.created_at)
