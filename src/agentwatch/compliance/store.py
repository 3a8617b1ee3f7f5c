"""Uploaded evidence: add one, list them newest first (keyset pages), read one, delete one,
and count them per control for the dashboard."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, and_, delete, false, func, or_, select, update

from agentwatch.compliance.evidence import Document
from agentwatch.compliance.schema import compliance_evidence as ev
from agentwatch.events.model import iso
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot

MAX_PER_CONTROL = 200  # uploads kept for one control; more answers 507
LISTED = [c for c in ev.c if c.name != "document"]


@dataclass
class NewEvidence:
    framework: str
    control_id: str
    title: str
    description: str
    uploaded_by: str
    url: str | None = None
    document: Document | None = None


def _json(row: Any, *, with_data: bool = False) -> dict[str, Any]:
    doc = None
    if row.doc_name is not None:
        doc = {"name": row.doc_name, "content_type": row.doc_type, "size": row.doc_size, "sha256": row.doc_sha256}
        if with_data:
            doc["data"] = base64.b64encode(bytes(row.document)).decode()
    return {
        "id": row.id,
        "framework": row.framework,
        "control_id": row.control_id,
        "title": row.title,
        "description": row.description,
        "url": row.url,
        "document": doc,
        "uploaded_by": row.uploaded_by,
        "uploaded_at": iso(row.created_at),
    }


def add(engine: Engine, item: NewEvidence) -> dict[str, Any] | None:
    """Store ``item``; its JSON, or None when its control already holds MAX_PER_CONTROL uploads."""
    doc = item.document
    row = {
        "id": str(uuid.uuid4()),
        "framework": item.framework,
        "control_id": item.control_id,
        "title": item.title,
        "description": item.description,
        "url": item.url,
        "doc_name": doc.name if doc else None,
        "doc_type": doc.content_type if doc else None,
        "doc_size": len(doc.data) if doc else None,
        "doc_sha256": doc.sha256 if doc else None,
        "document": doc.data if doc else None,
        "uploaded_by": item.uploaded_by,
        "created_at": time.time(),
    }
    with engine.begin() as conn:
        # the count and the insert in one writer's turn: SQLite's write lock taken before the read,
        # PostgreSQL's a lock on the control's rows (none yet: the advisory lock of its id)
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext("compliance:" + item.control_id))))
        else:
            conn.execute(update(ev).where(false()).values(title=ev.c.title))
        held = conn.execute(select(func.count()).where(ev.c.control_id == item.control_id)).scalar_one()
        if held >= MAX_PER_CONTROL:
            return None
        conn.execute(ev.insert().values(**row))
    return _json(SimpleNamespace(**row))


@dataclass
class EvidenceQuery:
    framework: str | None = None
    control_id: str | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None


def search(engine: Engine, q: EvidenceQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    """(a page newest first, how many match in all, the next page's cursor or None)."""
    where = []
    if q.framework is not None:
        where.append(ev.c.framework == q.framework)
    if q.control_id is not None:
        where.append(ev.c.control_id == q.control_id)
    page = where[:]
    if q.cursor is not None:
        at, rid = q.cursor
        page.append(or_(ev.c.created_at < at, and_(ev.c.created_at == at, ev.c.id < rid)))
    stmt = select(*LISTED).where(*page).order_by(ev.c.created_at.desc(), ev.c.id.desc()).limit(q.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(select(func.count()).select_from(ev).where(*where)).scalar_one()
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [_json(r) for r in rows], int(total), nxt


def get(engine: Engine, evidence_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(ev).where(ev.c.id == evidence_id)).first()
    return _json(row, with_data=True) if row is not None else None


def remove(engine: Engine, evidence_id: str) -> bool:
    """Delete one uploaded item, its document with it; False when there is no such item."""
    with engine.begin() as conn:
        return (conn.execute(delete(ev).where(ev.c.id == evidence_id)).rowcount or 0) > 0


def counts(engine: Engine, framework: str) -> dict[str, int]:
    """Uploaded evidence per control of ``framework``."""
    stmt = select(ev.c.control_id, func.count()).where(ev.c.framework == framework).group_by(ev.c.control_id)
    with engine.connect() as conn:
        return {cid: int(n) for cid, n in conn.execute(stmt)}
