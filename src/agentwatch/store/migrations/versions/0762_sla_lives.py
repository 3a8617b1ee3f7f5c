"""sla: a breach per alert, kind and life (reopened or made again); a start per target

Revision ID: 0762_sla_lives
Revises: 0761_sla_alert_age

``sla_marks.started_at``: the start of the alert's current life, for the marks already there
the creation of their alert (NULL when the alert is gone: the next pass drops that mark).
The unique index on the breaches moves from (alert_id, kind) to (alert_id, kind,
started_at); the breaches already recorded keep their rows and ids, as the first life of
their alert. ``sla_configs`` gets a start for each limit, both the band's ``effective_at``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0762_sla_lives"
down_revision = "0761_sla_alert_age"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sla_marks", sa.Column("started_at", sa.Float, nullable=True))
    op.execute(
        "UPDATE sla_marks SET started_at = (SELECT alerts.created_at FROM alerts WHERE alerts.id = sla_marks.alert_id)"
    )
    op.create_index("ix_sla_marks_started", "sla_marks", ["started_at"])
    op.drop_index("ix_sla_events_alert", table_name="sla_events")
    op.create_index("ix_sla_events_life", "sla_events", ["alert_id", "kind", "started_at"], unique=True)
    for column in ("acknowledge_effective_at", "resolve_effective_at"):
        op.add_column("sla_configs", sa.Column(column, sa.Float, nullable=False, server_default="0"))
    op.execute("UPDATE sla_configs SET acknowledge_effective_at = effective_at, resolve_effective_at = effective_at")


def downgrade() -> None:
    # 0760's index allows one breach per alert and kind: the later lives' breaches go
    op.execute(
        "DELETE FROM sla_events WHERE EXISTS (SELECT 1 FROM sla_events e WHERE e.alert_id = sla_events.alert_id"
        " AND e.kind = sla_events.kind AND e.started_at < sla_events.started_at)"
    )
    op.drop_index("ix_sla_events_life", table_name="sla_events")
    op.create_index("ix_sla_events_alert", "sla_events", ["alert_id", "kind"], unique=True)
    op.drop_index("ix_sla_marks_started", table_name="sla_marks")
    with op.batch_alter_table("sla_marks") as batch:
        batch.drop_column("started_at")
    with op.batch_alter_table("sla_configs") as batch:
        batch.drop_column("resolve_effective_at")
        batch.drop_column("acknowledge_effective_at")
