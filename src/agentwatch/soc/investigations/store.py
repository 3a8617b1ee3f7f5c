"""Investigations in the store: start one (one per case at a time), move it on, read it, and
read a case's ledger entries a page at a time (oldest investigation first, each in order).

A case is never erased (``DELETE /api/v1/cases/{id}`` closes it, kept for the audit trail), so
its investigations and their ledger are kept with it, append-only. :func:`case_status` is what
the investigator and the routes ask of the case: a closed case gets no new investigation and its
running one stops; a case no longer in the store (erased outside agentwatch) has nothing of its
ledger readable.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from agentwatch.events.model import iso
from agentwatch.soc.cases.schema import cases
from agentwatch.soc.investigations import seal
from agentwatch.soc.investigations.ledger import GENESIS
from agentwatch.soc.investigations.schema import investigation_entries, investigations
from agentwatch.soc.investigations.summary import summary
from agentwatch.store.keyset import encode_cursor

ACTIVE = ("queued", "running")
STATUSES = ("queued", "running", "done", "failed")
ABANDON_MARGIN_S = 120.0  # an active investigation untouched this long past its time limit was abandoned


class Busy(Exception):
    """The case has an investigation queued or running (``investigation_id``)."""

    def __init__(self, investigation_id: str) -> None:
        super().__init__(investigation_id)
        self.investigation_id = investigation_id


class TooMany(Exception):
    """The case holds the most investigations it may."""


def case_status(engine: Engine, case_id: str) -> str | None:
    """The case's status; None when the store holds no such case."""
    with engine.connect() as conn:
        return conn.execute(select(cases.c.status).where(cases.c.id == case_id)).scalar()


def _json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "case_id": row.case_id,
        "status": row.status,
        "started_by": row.started_by,
        "model": row.model or None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "finished_at": iso(row.finished_at) if row.finished_at is not None else None,
        "steps": row.steps,
        "tokens": row.tokens,
        "entries": row.entries,
        "head_hash": row.head_hash,
        "error": row.error,
        "report": orjson.loads(row.report) if row.report else None,
    }


def abandon_stale(engine: Engine, max_wall_s: float, now: float, case_id: str | None = None) -> int:
    """Mark failed the investigations left queued or running by a node that stopped (untouched
    past their time limit and a margin); how many."""
    c = investigations.c
    cond = [c.status.in_(ACTIVE), c.updated_at < now - max_wall_s - ABANDON_MARGIN_S]
    if case_id is not None:
        cond.append(c.case_id == case_id)
    with engine.begin() as conn:
        return conn.execute(
            update(investigations)
            .where(*cond)
            .values(
                status="failed", active_case=None, finished_at=now, updated_at=now, error="abandoned: its node stopped"
            )
        ).rowcount


def create(engine: Engine, case_id: str, who: str, max_per_case: int, max_wall_s: float, key: bytes) -> dict[str, Any]:
    """A queued investigation of the case, its empty ledger's head sealed under ``key``.
    Raises :class:`Busy` or :class:`TooMany`."""
    now = time.time()
    abandon_stale(engine, max_wall_s, now, case_id)
    c = investigations.c
    iid = str(uuid.uuid4())
    row = {
        "id": iid,
        "case_id": case_id,
        "active_case": case_id,
        "status": "queued",
        "started_by": who[: c.started_by.type.length],
        "nonce": secrets.token_hex(8),
        "model": "",
        "created_at": now,
        "updated_at": now,
        "steps": 0,
        "tokens": 0,
        "entries": 0,
        "head_hash": GENESIS,
        "head_mac": seal.head_mac(key, iid, 0, GENESIS),
    }
    try:
        with engine.begin() as conn:
            active = conn.execute(select(c.id).where(c.active_case == case_id)).first()
            if active is not None:
                raise Busy(active.id)
            held = conn.execute(select(func.count()).select_from(investigations).where(c.case_id == case_id))
            if int(held.scalar_one()) >= max_per_case:
                raise TooMany
            conn.execute(investigations.insert().values(**row))
    except IntegrityError:  # another request took the case between the read and the insert
        with engine.connect() as conn:
            active = conn.execute(select(c.id).where(c.active_case == case_id)).first()
        raise Busy(active.id if active is not None else "") from None
    return {**row, "nonce": row["nonce"]}


def set_running(engine: Engine, investigation_id: str, model: str) -> bool:
    """Move a queued investigation to running; False when it is no longer queued (marked
    abandoned while it waited for a slot)."""
    c = investigations.c
    with engine.begin() as conn:
        return (
            conn.execute(
                update(investigations)
                .where(c.id == investigation_id, c.status == "queued")
                .values(status="running", model=model[:256], updated_at=time.time())
            ).rowcount
            == 1
        )


def finish(
    engine: Engine, investigation_id: str, status: str, *, steps: int, tokens: int, error: str | None, report: Any
) -> None:
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            update(investigations)
            .where(investigations.c.id == investigation_id, investigations.c.status.in_(ACTIVE))  # not one abandoned
            .values(
                status=status,
                active_case=None,
                finished_at=now,
                updated_at=now,
                steps=steps,
                tokens=tokens,
                error=error,
                report=orjson.dumps(report).decode() if report is not None else None,
            )
        )


def progress(engine: Engine, investigation_id: str, steps: int, tokens: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(investigations)
            .where(investigations.c.id == investigation_id)
            .values(steps=steps, tokens=tokens, updated_at=time.time())
        )


def get(engine: Engine, investigation_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(investigations).where(investigations.c.id == investigation_id)).first()
    return None if row is None else _json(row)


def row(engine: Engine, investigation_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(investigations).where(investigations.c.id == investigation_id)).first()


def latest_finished(engine: Engine, case_id: str) -> str | None:
    c = investigations.c
    with engine.connect() as conn:
        found = conn.execute(
            select(c.id)
            .where(c.case_id == case_id, c.status.in_(("done", "failed")))
            .order_by(c.created_at.desc())
            .limit(1)
        ).first()
    return None if found is None else found.id


def of_case(engine: Engine, case_id: str) -> list[dict[str, Any]]:
    """The case's investigations, newest first (at most ``investigations.max_per_case``)."""
    c = investigations.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(investigations).where(c.case_id == case_id).order_by(c.created_at.desc(), c.id)
        ).all()
    out = []
    for r in rows:
        doc = _json(r)
        doc.pop("report")
        out.append(doc)
    return out


def entry_id(investigation_id: str, seq: int) -> str:
    return f"{investigation_id}.{seq}"


def entry_json(row: Any, *, full: bool) -> dict[str, Any]:
    payload = _payload(row.body)
    out = {
        "id": entry_id(row.investigation_id, row.seq),
        "investigation_id": row.investigation_id,
        "case_id": row.case_id,
        "seq": row.seq,
        "kind": row.kind,
        "ts": iso(row.ts),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
        "summary": summary(row.kind, payload),
    }
    if full:
        out["payload"] = payload
        out["body"] = row.body  # the exact text the hash covers
    return out


def entries_page(
    engine: Engine, case_id: str, investigation_id: str | None, limit: int, cursor: tuple[float, str] | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    """(a page of the case's entries, how many entries match, the next cursor)."""
    e = investigation_entries.c
    cond = [e.case_id == case_id]
    if investigation_id is not None:
        cond.append(e.investigation_id == investigation_id)
    stmt = select(investigation_entries).where(*cond)
    if cursor is not None:
        at, key = cursor
        iid, _, seq_text = key.partition(".")
        seq = int(seq_text)  # the api let only an entry id through (``<investigation id>.<seq>``)
        stmt = stmt.where(
            or_(
                e.inv_created_at > at,
                and_(e.inv_created_at == at, e.investigation_id > iid),
                and_(e.inv_created_at == at, e.investigation_id == iid, e.seq > seq),
            )
        )
    stmt = stmt.order_by(e.inv_created_at, e.investigation_id, e.seq).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        total = int(conn.execute(select(func.count()).select_from(investigation_entries).where(*cond)).scalar_one())
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].inv_created_at, entry_id(rows[-1].investigation_id, rows[-1].seq)) if more else None
    return [entry_json(r, full=False) for r in rows], total, nxt


def entry(engine: Engine, investigation_id: str, seq: int) -> dict[str, Any] | None:
    e = investigation_entries.c
    with engine.connect() as conn:
        found = conn.execute(
            select(investigation_entries).where(e.investigation_id == investigation_id, e.seq == seq)
        ).first()
    return None if found is None else entry_json(found, full=True)


def recorded(engine: Engine, investigation_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The investigation's entries as (kind, payload), in order (what a replay follows)."""
    e = investigation_entries.c
    with engine.connect() as conn:
        rows = conn.execute(select(e.kind, e.body).where(e.investigation_id == investigation_id).order_by(e.seq)).all()
    return [(r.kind, _payload(r.body)) for r in rows]


def _payload(body: str) -> dict[str, Any]:
    """The payload of a stored entry (an empty one when the text is not an entry: a changed
    entry, which :func:`ledger.verify` reports)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    payload = doc.get("payload") if isinstance(doc, dict) else None
    return payload if isinstance(payload, dict) else {}
