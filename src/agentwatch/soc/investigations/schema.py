"""Tables of the AI investigator (Alembic branch ``investigations``, revision 0840_investigations).

``investigations``: one row per investigation of a case, with its status, its bounds used, the
hash and count of its ledger (the head: a ledger cut short no longer meets it) and its report.
``active_case`` holds the case id while the investigation is queued or running and NULL after:
being unique, it lets one investigation per case run at a time, on every node. ``head_mac``
(revision 0841_investigations_hmac) seals the head under a key the database does not hold
(:mod:`agentwatch.soc.investigations.seal`); NULL on rows written before it.

``investigation_entries``: the ledger, append-only. ``body`` is the entry's canonical JSON
(:mod:`agentwatch.soc.investigations.ledger`), ``hash`` is sha256 over ``prev_hash`` and ``body``;
the primary key (investigation, seq) keeps two writers from appending the same position.
``inv_created_at`` (the investigation's creation time) orders a case's entries investigation by
investigation.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from agentwatch.store.schema import metadata

investigations = Table(
    "investigations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("active_case", String(36), unique=True),  # the case id while queued or running
    Column("status", String(16), nullable=False),
    Column("started_by", String(256), nullable=False),
    Column("nonce", String(32), nullable=False),
    Column("model", String(256), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("steps", Integer, nullable=False, default=0),
    Column("tokens", Integer, nullable=False, default=0),
    Column("entries", Integer, nullable=False, default=0),
    Column("head_hash", String(64), nullable=False),
    Column("error", Text),
    Column("report", Text),  # JSON, once done
    Column("head_mac", String(64)),  # HMAC of the head (seal.py); NULL: written before heads were sealed
)
Index("ix_investigations_case", investigations.c.case_id, investigations.c.created_at)

investigation_entries = Table(
    "investigation_entries",
    metadata,
    Column("investigation_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("case_id", String(36), nullable=False),
    Column("inv_created_at", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("ts", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index(
    "ix_investigation_entries_case",
    investigation_entries.c.case_id,
    investigation_entries.c.inv_created_at,
    investigation_entries.c.investigation_id,
    investigation_entries.c.seq,
)
