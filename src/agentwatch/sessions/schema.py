"""Tables of the sessions capability (Alembic branch ``sessions``, revisions 0200_sessions,
0201_sessions_goal_rank).

``aop_sessions`` is derived from committed AOP events (one row per session);
``aop_rule_state`` holds the session rules' state per session and per agent so the
rules pick up where they were after a restart.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, SmallInteger, String, Table, Text

from agentwatch.store.schema import metadata

aop_sessions = Table(
    "aop_sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("agent_id", String(128), nullable=False),
    Column("agent_version", String(64)),
    Column("parent_session_id", String(128)),
    Column("goal", Text),
    # Where ``goal`` came from, so a goal arriving later can be ranked against it (0201): 0 a
    # session.started, 1 a cognition.goal; its event time and sequence. NULL with a goal: a
    # row derived before 0201, its goal's origin unknown.
    Column("goal_rank", SmallInteger),
    Column("goal_at", Float),
    Column("goal_sequence", BigInteger),
    Column("status", String(16), nullable=False),
    Column("outcome", String(16)),  # the outcome of session.ended, kept when a stall changes status
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("last_event_at", Float, nullable=False),  # newest event time
    Column("last_seen_at", Float, nullable=False),  # newest receive time: "most recent activity"
    Column("event_count", Integer, nullable=False),
    Column("event_steps", Integer, nullable=False),  # cognition/operation events seen
    Column("reported_steps", Integer, nullable=False),  # from heartbeat step / ended total_steps
    Column("reported_tokens", Float, nullable=False),
    Column("summed_tokens", Float, nullable=False),
    Column("reported_cost", Float),
    Column("summed_cost", Float),
    Column("max_sequence", BigInteger, nullable=False),
)
Index("ix_aop_sessions_last_seen", aop_sessions.c.last_seen_at)
Index("ix_aop_sessions_parent", aop_sessions.c.parent_session_id)
Index("ix_aop_sessions_status", aop_sessions.c.status, aop_sessions.c.last_seen_at)
Index("ix_aop_sessions_agent", aop_sessions.c.agent_id, aop_sessions.c.last_seen_at)

aop_rule_state = Table(
    "aop_rule_state",
    metadata,
    Column("scope", String(300), primary_key=True),  # "session:<id>" or "agent:<id>"
    Column("state", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
