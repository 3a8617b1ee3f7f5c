"""Tables of the detection proposals (Alembic branch ``proposals``, revision 0730_proposals).

A proposal keeps its Sigma YAML (``logic``) with a version number that grows on every change;
an eval row records the version (and the SHA-256 of the text) it ran on, so promotion can
insist on a passing eval of exactly the logic that will go live.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

detection_proposals = Table(
    "detection_proposals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("logic", Text, nullable=False),
    Column("logic_version", Integer, nullable=False, default=1),
    Column("rule_id", String(256), nullable=False),  # the id the Sigma logic gives its rule
    Column("mitre_tags", Text, nullable=False, default="[]"),
    Column("test_cases", Text, nullable=False, default="{}"),
    Column("status", String(16), nullable=False),
    Column("author", String(256), nullable=False),  # principal name (user:<id>, api_key:<id>)
    Column("author_person", String(256), nullable=False),  # the user behind it (four-eyes)
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("decided_by", String(256)),
    Column("decided_at", Float),
    Column("decision_reason", Text),
    Column("approved_logic_version", Integer),
    Column("promoted_rule_id", String(256)),
    Column("promoted_by", String(256)),
    Column("promoted_at", Float),
)
Index("ix_detection_proposals_created", detection_proposals.c.created_at, detection_proposals.c.id)
Index("ix_detection_proposals_status", detection_proposals.c.status, detection_proposals.c.created_at)

detection_proposal_comments = Table(
    "detection_proposal_comments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("proposal_id", String(36), nullable=False),
    Column("author", String(256), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index(
    "ix_detection_proposal_comments",
    detection_proposal_comments.c.proposal_id,
    detection_proposal_comments.c.created_at,
)

detection_proposal_evals = Table(
    "detection_proposal_evals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("proposal_id", String(36), nullable=False),
    Column("logic_version", Integer, nullable=False),
    Column("logic_sha256", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("result", Text, nullable=False),  # agentwatch's own run (JSON)
    Column("external", Text, nullable=False, default="{}"),  # outside metric deltas as given (JSON)
    Column("principal", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_detection_proposal_evals", detection_proposal_evals.c.proposal_id, detection_proposal_evals.c.created_at)

detection_proposal_baselines = Table(
    "detection_proposal_baselines",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("metrics", Text, nullable=False),  # the live rule set's run over the window (JSON)
    Column("principal", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_detection_proposal_baselines", detection_proposal_baselines.c.created_at)
