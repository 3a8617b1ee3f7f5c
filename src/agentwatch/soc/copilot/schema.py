"""The offered actions of the copilot (Alembic branch ``copilot``, revision 0850_copilot).

An action the copilot offers is stored here, bound to the caller it was offered to, with its
arguments and an expiry: the client only holds a random id (its SHA-256 is the key, as for
any credential), so it can name an action but never change what the action does. Running an
action marks it ``used_at``: once only.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from agentwatch.store.schema import metadata

copilot_actions = Table(
    "copilot_actions",
    metadata,
    Column("digest", String(64), primary_key=True),  # sha256 of the id given to the client
    Column("principal", String(256), nullable=False),  # kind:id of the caller it was offered to
    Column("kind", String(32), nullable=False),
    Column("args", Text, nullable=False),  # JSON object
    Column("resource", String(300), nullable=False),  # type/id the suggestion was about
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),  # NULL: not run yet
)
Index("ix_copilot_actions_expires", copilot_actions.c.expires_at)
Index("ix_copilot_actions_principal", copilot_actions.c.principal, copilot_actions.c.created_at)
