"""Tables of the access layer and the audit log (Alembic branch ``auth``, revision 0100_auth).

Secrets are never stored: passwords as argon2 hashes, refresh tokens and API-key secrets as
SHA-256 digests (they are long random strings, so a fast digest is enough to make a stolen
table useless while keeping the per-request check cheap).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

BIGINT = BigInteger().with_variant(Integer, "sqlite")

users = Table(
    "auth_users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(64), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_login_at", Float),
)

roles = Table(
    "auth_roles",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("permissions", Text, nullable=False, default="[]"),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

permissions = Table(
    "auth_permissions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

# One row per login: the refresh-token family. Revoking it ends every token of the family.
sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("revoke_reason", String(64)),
    Column("client", String(64)),
)
Index("ix_auth_sessions_user", sessions.c.user_id)

refresh_tokens = Table(
    "auth_refresh_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("session_id", String(36), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("issued_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
)
Index("ix_auth_refresh_session", refresh_tokens.c.session_id)

api_keys = Table(
    "auth_api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("prefix", String(16), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("owner_id", String(36), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("scopes", Text, nullable=False, default="[]"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("last_used_at", Float),
    Column("last_used_from", String(64)),
    Column("revoked_at", Float),
)
Index("ix_auth_api_keys_owner", api_keys.c.owner_id)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BIGINT, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(128), nullable=False),
    Column("actor_name", String(320), nullable=False),
    Column("action", String(128), nullable=False),
    Column("target", String(512), nullable=False, default=""),
    Column("status", Integer),
    Column("client", String(64), nullable=False, default=""),
    Column("details", Text, nullable=False, default="{}"),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_ts", audit_log.c.ts)
Index("ix_audit_actor", audit_log.c.actor_id, audit_log.c.seq)
Index("ix_audit_action", audit_log.c.action, audit_log.c.seq)

# A single row (id = 1) naming the newest entry: deleting the newest rows leaves it pointing
# past the end of the table, so truncation is detected.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BIGINT, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Failed sign-in attempts of the current window per budget (``login:acct:<hmac>``,
# ``login:addr:<address>``), kept in the store so that every process and node sharing it counts
# against one budget (``soc.auth.attempts``); rows of ended windows are deleted as they are met.
attempts = Table(
    "auth_attempts",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("window_index", BIGINT, nullable=False),
    Column("hits", Integer, nullable=False),
    Column("reset_at", Float, nullable=False),
)
Index("ix_auth_attempts_reset", attempts.c.reset_at)
