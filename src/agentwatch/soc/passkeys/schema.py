"""Tables of the passkeys capability (Alembic branch ``passkeys``, revision 0810_passkeys).

``passkeys`` holds registered credentials (the credential id in base64url, unique; the COSE
public key; the authenticator's signature counter). ``passkey_challenges`` holds the
challenges of ceremonies in progress, by the SHA-256 of the challenge: single use (a row is
deleted when a response names it) and expiring."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, LargeBinary, String, Table, Text

from agentwatch.soc.auth.users import USER_OWNED
from agentwatch.store.schema import metadata

passkeys = Table(
    "passkeys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("credential_id", String(1400), nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False, default=0),
    Column("name", String(64), nullable=False, default=""),
    Column("transports", Text, nullable=False, default="[]"),
    Column("aaguid", String(36), nullable=False, default=""),
    Column("backed_up", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    info={USER_OWNED: "user_id"},  # deleted with the user (UserStore.delete)
)
Index("ix_passkeys_user", passkeys.c.user_id, passkeys.c.created_at)

passkey_challenges = Table(
    "passkey_challenges",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the challenge, hex
    Column("purpose", String(16), nullable=False),
    Column("user_id", String(36)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_passkey_challenges_user", passkey_challenges.c.user_id, passkey_challenges.c.created_at)
Index("ix_passkey_challenges_expires", passkey_challenges.c.expires_at)
