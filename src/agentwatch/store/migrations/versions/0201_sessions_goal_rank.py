"""sessions: where a session's goal came from (its rank, event time and sequence)

Revision ID: 0201_sessions_goal_rank
Revises: 0200_sessions

Nullable columns: adding them rewrites no row (neither SQLite nor PostgreSQL copies the table
for a nullable column without a default). Existing sessions keep their goal with the origin
unknown (NULL): only a goal from a ``session.started`` replaces such a goal, as before.
"""

import sqlalchemy as sa
from alembic import op

revision = "0201_sessions_goal_rank"
down_revision = "0200_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("aop_sessions", sa.Column("goal_rank", sa.SmallInteger, nullable=True))
    op.add_column("aop_sessions", sa.Column("goal_at", sa.Float, nullable=True))
    op.add_column("aop_sessions", sa.Column("goal_sequence", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("aop_sessions") as batch:
        batch.drop_column("goal_sequence")
        batch.drop_column("goal_at")
        batch.drop_column("goal_rank")
