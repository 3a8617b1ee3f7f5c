"""Tables of cases (Alembic branch ``auth`` of the soc capability, revision 0101_cases).

No foreign keys, as elsewhere in the store: a link to an alert goes with the alert
(:func:`agentwatch.alerts.recorder.delete_dependents`, which records it on the case:
:mod:`agentwatch.soc.cases.deleted_alerts`), and a case is never deleted (``DELETE`` closes it),
so its comments and timeline always have their case.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

cases = Table(
    "cases",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("severity", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("assignee", String(128)),  # NULL: nobody
    Column("tags", Text, nullable=False, default="[]"),  # JSON list
    Column("created_by", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("closed_at", Float),
)
Index("ix_cases_created", cases.c.created_at, cases.c.id)

# The alerts a case links, in the order they were given (``position``).
case_alerts = Table(
    "case_alerts",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("alert_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)
Index("ix_case_alerts_alert", case_alerts.c.alert_id)

case_comments = Table(
    "case_comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("author", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_case_comments_case", case_comments.c.case_id, case_comments.c.created_at)

# What happened, in event time (``ts``): analysts' notes, evidence and actions, and an automatic
# ``change`` entry for each change to the case (``fields``: a JSON list of the names changed).
case_timeline = Table(
    "case_timeline",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("ts", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("fields", Text, nullable=False, default="[]"),
    Column("author", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_case_timeline_case", case_timeline.c.case_id, case_timeline.c.ts)
