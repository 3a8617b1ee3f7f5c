"""The installs table of the marketplace (Alembic branch ``marketplace``, revision 0870_marketplace).

One row per installed item (its slug): the version installed, its kind, the resource it became
(a rule id or a playbook id), who installed it and when."""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table

from agentwatch.store.schema import metadata

marketplace_installs = Table(
    "marketplace_installs",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("version", String(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("resource_id", String(256), nullable=False),
    Column("installed_by", String(256), nullable=False, default=""),
    Column("installed_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
