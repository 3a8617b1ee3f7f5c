"""Tables of single sign-on (Alembic branch ``sso``, revisions 0800_sso and 0801_sso_accounts).

``sso_requests``: sign-ons started and not yet completed, keyed by the SHA-256 of the OIDC
``state`` or of the SAML request id; each is taken once (deleted when used) and expires;
``extra`` holds the client address that started it (for ``sso.max_pending_per_address``);
``binding`` the SHA-256 of the ``aw_sso`` cookie set in the browser that started it (``binding.py``).
``sso_assertions``: the ids of SAML assertions already used, kept until they expire, so a
replayed assertion is refused.
``sso_accounts``: the accounts sign-on created (``sso.auto_provision``), with the method that
created them; a row goes when its user is deleted. An account without a row was made otherwise
(a password account), which ``sso.link_existing_admins`` guards when it holds an admin role."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

from agentwatch.soc.auth.users import USER_OWNED
from agentwatch.store.schema import metadata

sso_requests = Table(
    "sso_requests",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("nonce", String(128), nullable=False, default=""),
    Column("verifier", String(128), nullable=False, default=""),
    Column("binding", String(64), nullable=False, default=""),
    Column("extra", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_sso_requests_expires", sso_requests.c.expires_at)

sso_assertions = Table(
    "sso_assertions",
    metadata,
    Column("id", String(256), primary_key=True),
    Column("expires_at", Float, nullable=False),
)
Index("ix_sso_assertions_expires", sso_assertions.c.expires_at)

sso_accounts = Table(
    "sso_accounts",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("method", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    info={USER_OWNED: "user_id"},
)
