"""auth: users, roles, custom permissions, sessions, refresh tokens, API keys, audit log

Revision ID: 0100_auth
Revises: 0002_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0100_auth"
down_revision = "0002_alerts"
branch_labels = ("auth",)
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_login_at", sa.Float),
    )
    op.create_table(
        "auth_roles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("permissions", sa.Text, nullable=False, server_default="[]"),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "auth_permissions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("revoke_reason", sa.String(64)),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("ix_auth_sessions_user", "auth_sessions", ["user_id"])
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("used_at", sa.Float),
    )
    op.create_index("ix_auth_refresh_session", "auth_refresh_tokens", ["session_id"])
    op.create_table(
        "auth_api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("owner_id", sa.String(36), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("last_used_at", sa.Float),
        sa.Column("last_used_from", sa.String(64)),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_auth_api_keys_owner", "auth_api_keys", ["owner_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", BIGINT, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("actor_name", sa.String(320), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("target", sa.String(512), nullable=False, server_default=""),
        sa.Column("status", sa.Integer),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_ts", "audit_log", ["ts"])
    op.create_index("ix_audit_actor", "audit_log", ["actor_id", "seq"])
    op.create_index("ix_audit_action", "audit_log", ["action", "seq"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", BIGINT, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "audit_head",
        "audit_log",
        "auth_api_keys",
        "auth_refresh_tokens",
        "auth_sessions",
        "auth_permissions",
        "auth_roles",
        "auth_users",
    ):
        op.drop_table(name)
