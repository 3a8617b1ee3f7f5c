"""entities: the index of every entity named by a stored event (search, timeline, risk history)

Revision ID: 0500_entities
Revises: 0002_alerts

The table starts empty: entities named only by events stored before this revision are not
listed (going through every stored event's entities here would take as long as the store is
large, inside the start-up's migration lock). An entity gets its row, and its counts from
then on, from the first event naming it after the upgrade.
"""

import sqlalchemy as sa
from alembic import op

revision = "0500_entities"
down_revision = "0002_alerts"
branch_labels = ("entities",)
depends_on = None

BYTEWISE = sa.String(512).with_variant(sa.String(512, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "entities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("folded", BYTEWISE, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_entities_folded", "entities", ["folded"])
    op.create_index("ix_entities_last_seen", "entities", ["last_seen"])


def downgrade() -> None:
    op.drop_table("entities")
