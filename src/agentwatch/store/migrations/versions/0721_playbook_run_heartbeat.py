"""playbooks: a running run's heartbeat, and why a run ended when its steps did not end it

Revision ID: 0721_playbook_run_heartbeat
Revises: 0720_playbooks

The process running a run refreshes ``heartbeat_at`` every few seconds; a run still
``running`` whose heartbeat is older than ``playbooks.stale_run_s`` lost its process (killed,
out of memory, power gone) and is ended ``interrupted`` by a sweep, ``reason`` saying so (see
``agentwatch.soc.playbooks.liveness``). The rows already stored take their start as their last
heartbeat: a run left ``running`` by a process that died before this revision is swept too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0721_playbook_run_heartbeat"
down_revision = "0720_playbooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("playbook_runs", sa.Column("heartbeat_at", sa.Float))
    op.add_column("playbook_runs", sa.Column("reason", sa.Text))
    runs = sa.table("playbook_runs", sa.column("heartbeat_at", sa.Float), sa.column("started_at", sa.Float))
    op.execute(runs.update().values(heartbeat_at=runs.c.started_at))
    op.create_index("ix_playbook_runs_heartbeat", "playbook_runs", ["status", "heartbeat_at"])


def downgrade() -> None:
    op.drop_index("ix_playbook_runs_heartbeat", table_name="playbook_runs")
    with op.batch_alter_table("playbook_runs") as batch:
        batch.drop_column("reason")
        batch.drop_column("heartbeat_at")
