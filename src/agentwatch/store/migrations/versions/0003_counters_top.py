"""counters: an index for each family's largest totals, and each family's sum row

Revision ID: 0003_counters_top
Revises: 0002_alerts

The keys of some counter families come from event payloads, so a family can hold any number
of rows; ``store.counters`` reads only the top ``TOP_N`` of each by walking this index, and
gives the rest as one sum kept in the row ``("sum", family)``. The sum rows of a store that
already holds totals are filled in here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_counters_top"
down_revision = "0002_alerts"
branch_labels = None
depends_on = None

SUM_FAMILY = "sum"  # the value of store.counters.SUM_FAMILY when this revision was written

counters = sa.table("counters", sa.column("family", sa.String), sa.column("key", sa.String), sa.column("value"))


def upgrade() -> None:
    op.create_index("ix_counters_top", "counters", ["family", sa.text("value DESC"), "key"])
    fam = counters.c.family
    sums = sa.select(sa.literal(SUM_FAMILY), fam, sa.func.sum(counters.c.value)).where(fam != SUM_FAMILY).group_by(fam)
    op.execute(sa.insert(counters).from_select(["family", "key", "value"], sums))


def downgrade() -> None:
    op.execute(sa.delete(counters).where(counters.c.family == SUM_FAMILY))
    op.drop_index("ix_counters_top", table_name="counters")
