"""Tables of single sign-on (Alembic branch ``sso``, revision 0800_sso).

``sso_requests``: sign-ons started and not yet completed, keyed by the SHA-256 of the OIDC
``state`` or of the SAML request id; each is taken once (deleted when used) and expires;
``extra`` holds the client address that started it (for ``sso.max_pending_per_address``).
``sso_assertions``: the ids of SAML assertions already used, kept until they expire, so a
replayed assertion is refused."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, String, Table, Text

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
