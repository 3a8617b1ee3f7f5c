"""The tables of the marketplace (Alembic branch ``marketplace``).

- ``marketplace_installs`` (0870_marketplace; ``resource_ids`` from 0872_marketplace_install_rules):
  one row per installed item (its slug): the version installed, its kind, the resource it became
  (a rule id or a playbook id; ``resource_ids`` every rule a detection made, as a JSON list), who
  installed it and when; ``rule_marks`` (0874_marketplace_install_digests) what each of those
  rules looked like as stored right after the install (JSON: rule id -> the SHA-256 of its stored
  YAML and its stored ``created_at``), so an uninstall deletes only rules that are still the ones
  the install made (NULL: a row written before, or a playbook).
- ``marketplace_index_state`` (0871_marketplace_index_state): one row per remote index source
  (the SHA-256 of its URL, which may hold a token): the newest ``sequence`` accepted from it and
  the digest of that index, and the newest version of each item it listed verified, so an older
  index served again is refused after a restart and on every node of the store; ``document``
  (0873_marketplace_last_index) the text of that last index accepted, at most
  ``marketplace.max_bytes``, listed after a restart until a fetch succeeds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, String, Table, Text

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
    Column("resource_ids", Text, nullable=True),
    Column("rule_marks", Text, nullable=True),
)

marketplace_index_state = Table(
    "marketplace_index_state",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("sequence", BigInteger, nullable=True),
    Column("digest", String(64), nullable=True),
    Column("versions", Text, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("document", Text, nullable=True),
)
