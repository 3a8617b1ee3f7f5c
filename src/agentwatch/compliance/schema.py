"""The uploaded-evidence table of the compliance capability (Alembic branch ``compliance``,
revision 0790_compliance). A document travels in the request and is kept in this row, never
on a file path anyone chooses."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, String, Table, Text

from agentwatch.store.schema import metadata

compliance_evidence = Table(
    "compliance_evidence",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("framework", String(64), nullable=False),
    Column("control_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("url", Text),  # checked on upload, never fetched
    Column("doc_name", String(200)),
    Column("doc_type", String(64)),
    Column("doc_size", Integer),
    Column("doc_sha256", String(64)),
    Column("document", LargeBinary),
    Column("uploaded_by", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_compliance_evidence_control", compliance_evidence.c.control_id, compliance_evidence.c.created_at)
Index("ix_compliance_evidence_created", compliance_evidence.c.created_at, compliance_evidence.c.id)
