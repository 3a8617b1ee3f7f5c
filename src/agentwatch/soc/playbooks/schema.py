"""Tables of the playbooks capability (Alembic branch ``playbooks``, revision 0720_playbooks).

A playbook's trigger and steps are JSON documents, validated by :mod:`agentwatch.soc.playbooks.model`
before they are stored. A run keeps its steps' results as one JSON list, each result bounded
(:mod:`agentwatch.soc.playbooks.runner`). ``auto_key`` (playbook id and alert id) is unique for
automatic runs, so a playbook runs at most once on one alert whatever the number of nodes.
``heartbeat_at`` is refreshed by the process running a run (revision 0721_playbook_run_heartbeat):
a ``running`` run whose heartbeat lapsed lost its process, and the sweep of
:mod:`agentwatch.soc.playbooks.liveness` ends it ``interrupted``, ``reason`` saying why.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, String, Table, Text

from agentwatch.store.schema import metadata

playbooks = Table(
    "playbooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False),
    Column("trigger", Text, nullable=False),  # JSON object
    Column("steps", Text, nullable=False),  # JSON list
    Column("requires_approval", Boolean, nullable=False, default=False),  # revision 0830_approvals
    Column("created_by", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_playbooks_created", playbooks.c.created_at, playbooks.c.id)

playbook_runs = Table(
    "playbook_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("playbook_id", String(36), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | automatic
    Column("started_by", String(256), nullable=False),
    Column("status", String(24), nullable=False),
    Column("auto_key", String(101), unique=True),  # NULL for manual runs
    Column("steps", Text, nullable=False, default="[]"),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("approval_id", String(36)),  # the approval request a held run waits for (0830_approvals)
    Column("heartbeat_at", Float),  # the running process's last sign of life (0721_playbook_run_heartbeat)
    Column("reason", Text),  # why it ended, when its steps did not end it (0721_playbook_run_heartbeat)
)
Index("ix_playbook_runs_playbook", playbook_runs.c.playbook_id, playbook_runs.c.started_at, playbook_runs.c.id)
# the sweep looks for running runs with an old heartbeat: few rows are running
Index("ix_playbook_runs_heartbeat", playbook_runs.c.status, playbook_runs.c.heartbeat_at)
