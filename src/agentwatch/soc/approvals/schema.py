"""The table of the approvals capability (Alembic branch ``approvals``, revisions 0830_approvals
and 0831_approvals_due).

``requester`` is the person behind ``requested_by`` (an API key counts as the user who owns
it), kept for the four-eyes rule. ``gated`` is the JSON document of the action a decision
releases (None for a request that only records a decision); ``outcome`` what that action did.
``due_at`` is when an approved request's held action became due; it is cleared in the
transaction that starts the action, so a request still showing it after a crash is recovered.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from agentwatch.store.schema import metadata

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("action", String(512), nullable=False),
    Column("gated", Text),  # JSON object, or NULL
    Column("requested_by", String(256), nullable=False),
    Column("requester", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # pending|approved|rejected|expired|executed|failed
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("decided_by", String(256)),
    Column("decided_at", Float),
    Column("comment", Text),
    Column("outcome", Text),  # JSON object, or NULL
    Column("updated_at", Float, nullable=False),
    Column("due_at", Float),  # revision 0831_approvals_due
)
Index("ix_approval_requests_created", approval_requests.c.created_at, approval_requests.c.id)
Index(
    "ix_approval_requests_status",
    approval_requests.c.status,
    approval_requests.c.created_at,
    approval_requests.c.id,
)
Index("ix_approval_requests_expiry", approval_requests.c.status, approval_requests.c.expires_at)
Index("ix_approval_requests_due", approval_requests.c.due_at)
