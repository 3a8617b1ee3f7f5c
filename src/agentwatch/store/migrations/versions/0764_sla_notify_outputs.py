"""sla: which targets each breach notice is meant for, and which are done with it

Revision ID: 0764_sla_notify_outputs
Revises: 0763_sla_notify

``sla_events`` gets ``notify_targets`` (a JSON list of the targets the notice is meant for:
``output:<name>`` for each output of ``sla.notify_outputs``, ``oncall`` for the push, fixed at
its first attempt) and ``notify_done`` (a JSON list of those of them that accepted it), so a
retry goes only to the targets that have not. Both stay NULL on the breaches already there: a
notice still waiting is meant for the targets configured at its next attempt, none done yet.
"""

import sqlalchemy as sa
from alembic import op

revision = "0764_sla_notify_outputs"
down_revision = "0763_sla_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_events", sa.Column("notify_targets", sa.Text, nullable=True))
    op.add_column("sla_events", sa.Column("notify_done", sa.Text, nullable=True))


def downgrade() -> None:
    # a notice still waiting then goes again to every target, as before this revision
    with op.batch_alter_table("sla_events") as batch:
        batch.drop_column("notify_done")
        batch.drop_column("notify_targets")
