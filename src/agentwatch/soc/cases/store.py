"""Cases in the store: create, list (keyset pages), read, change, close, comment, timeline.

Every write to a case runs under the case's lock (PostgreSQL: its row ``FOR UPDATE``; SQLite:
the database's write lock), so two comments cannot both pass the per-case cap and two changes
cannot both record the same old value. Linking alerts also takes their dedup-key locks
(:mod:`agentwatch.alerts.dedup_lock`), which an alert's deletion holds: a link is made either
before the deletion (which then removes it) or after it (and is refused as unknown), never left
pointing at nothing. The dedup-key locks come first and the case lock last, in every path
(an alert's deletion holds the alert's and then locks the cases linking it:
:mod:`agentwatch.soc.cases.deleted_alerts`).

The list reads its page and its ``total`` in one snapshot (:func:`agentwatch.store.snapshot.snapshot`), so the two
agree even while cases are being created.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, delete, false, func, or_, select, update

from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.alerts.model import severity_label
from agentwatch.events.model import iso
from agentwatch.soc.cases import history
from agentwatch.soc.cases.schema import case_alerts, case_comments, case_timeline, cases
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.keyset import encode_cursor
from agentwatch.store.snapshot import snapshot

MAX_COMMENTS = 10_000  # per case
MAX_ENTRIES = 10_000  # timeline entries analysts add, per case (automatic ``change`` entries aside)
PRINCIPAL_WIDTH = cases.c.created_by.type.length


class UnknownAlerts(ValueError):
    """Alerts to link that do not exist (``ids``, in the order given)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


class CaseFull(ValueError):
    """The case already holds the most comments or timeline entries it may."""


@dataclass
class CaseQuery:
    status: str | None = None
    assignee: str | None = None
    unassigned: bool = False  # only cases with no assignee
    min_severity: int | None = None
    alert_id: str | None = None
    limit: int = 100
    cursor: tuple[float, str] | None = None


# -- reading ----------------------------------------------------------------------------------


def _links(conn: Connection, case_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {cid: [] for cid in case_ids}
    if case_ids:
        rows = conn.execute(
            select(case_alerts.c.case_id, case_alerts.c.alert_id)
            .where(case_alerts.c.case_id.in_(case_ids))
            .order_by(case_alerts.c.case_id, case_alerts.c.position)
        )
        for cid, aid in rows:
            out[cid].append(aid)
    return out


def _case(row: Any, alert_ids: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "description": row.description,
        "severity": row.severity,
        "severity_label": severity_label(row.severity),
        "status": row.status,
        "assignee": row.assignee,
        "tags": orjson.loads(row.tags),
        "alert_ids": alert_ids,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "closed_at": iso(row.closed_at) if row.closed_at is not None else None,
    }


def list_cases(engine: Engine, q: CaseQuery) -> tuple[list[dict[str, Any]], int, str | None]:
    """(cases newest first, total matching the filters, next cursor when more remain)."""
    cond: list[Any] = []
    if q.status is not None:
        cond.append(cases.c.status == q.status)
    if q.assignee is not None:
        cond.append(cases.c.assignee == q.assignee)
    if q.unassigned:
        cond.append(cases.c.assignee.is_(None))
    if q.min_severity is not None:
        cond.append(cases.c.severity >= q.min_severity)
    if q.alert_id is not None:
        linked = select(case_alerts.c.case_id).where(case_alerts.c.alert_id == q.alert_id)
        cond.append(cases.c.id.in_(linked))
    stmt = select(cases).where(and_(*cond)) if cond else select(cases)
    count = select(func.count()).select_from(cases)
    if cond:
        count = count.where(and_(*cond))
    if q.cursor is not None:
        created_at, cid = q.cursor
        stmt = stmt.where(
            or_(cases.c.created_at < created_at, and_(cases.c.created_at == created_at, cases.c.id < cid))
        )
    stmt = stmt.order_by(cases.c.created_at.desc(), cases.c.id.desc()).limit(q.limit + 1)
    with snapshot(engine) as conn:
        rows = conn.execute(stmt).all()
        total = conn.execute(count).scalar_one()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        links = _links(conn, [r.id for r in rows])
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return [_case(r, links[r.id]) for r in rows], int(total), nxt


def get_case(engine: Engine, case_id: str) -> dict[str, Any] | None:
    """The case with its newest comments and timeline entries (:mod:`history`; oldest first,
    with their totals) and a summary of each linked alert that still exists."""
    with engine.connect() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            return None
        ids = _links(conn, [case_id])[case_id]
        doc = _case(row, ids)
        doc["comments"], doc["comments_total"] = history.newest(conn, "comments", case_id)
        doc["timeline"], doc["timeline_total"] = history.newest(conn, "timeline", case_id)
        found = {}
        if ids:
            cols = (
                alerts.c.id,
                alerts.c.title,
                alerts.c.severity,
                alerts.c.status,
                alerts.c.rule_id,
                alerts.c.last_seen,
            )
            found = {a.id: a for a in conn.execute(select(*cols).where(alerts.c.id.in_(ids)))}
    doc["alerts"] = [
        {
            "id": a.id,
            "title": a.title,
            "severity": a.severity,
            "severity_label": severity_label(a.severity),
            "status": a.status,
            "rule_id": a.rule_id,
            "last_seen": iso(a.last_seen),
        }
        for a in (found[i] for i in ids if i in found)
    ]
    return doc


# -- writing ----------------------------------------------------------------------------------


def _lock_case(conn: Connection, case_id: str) -> Any:
    """The case's row, locked until the transaction ends; None when there is no such case."""
    if conn.dialect.name == "sqlite":  # a write that changes nothing takes the write lock now
        conn.execute(update(cases).where(false()).values(updated_at=cases.c.updated_at))
    return conn.execute(select(cases).where(cases.c.id == case_id).with_for_update()).first()


def _lock_alerts(conn: Connection, alert_ids: list[str]) -> None:
    """Take the dedup-key locks of ``alert_ids``, then refuse (UnknownAlerts) any not there."""
    if not alert_ids:
        return
    keys = conn.execute(select(alerts.c.dedup_key).where(alerts.c.id.in_(alert_ids))).scalars().all()
    lock_dedup_keys(conn, keys)
    present = set(conn.execute(select(alerts.c.id).where(alerts.c.id.in_(alert_ids))).scalars())
    missing = [a for a in alert_ids if a not in present]
    if missing:
        raise UnknownAlerts(missing)


def _set_links(conn: Connection, case_id: str, alert_ids: list[str]) -> None:
    conn.execute(delete(case_alerts).where(case_alerts.c.case_id == case_id))
    if alert_ids:
        conn.execute(
            case_alerts.insert(), [{"case_id": case_id, "alert_id": a, "position": i} for i, a in enumerate(alert_ids)]
        )


def timeline_row(
    case_id: str,
    principal: str,
    title: str,
    *,
    kind: str = "change",
    description: str = "",
    fields: list[str] | None = None,
    ts: float | None = None,
    now: float,
) -> dict[str, Any]:
    """A new row of ``case_timeline`` (not yet stored)."""
    return {
        "id": str(uuid.uuid4()),
        "case_id": case_id,
        "ts": now if ts is None else ts,
        "kind": kind,
        "title": title,
        "description": description,
        "fields": orjson.dumps(fields or []).decode(),
        "author": principal[:PRINCIPAL_WIDTH],
        "created_at": now,
    }


def _add_entry(conn: Connection, case_id: str, principal: str, title: str, **entry: Any) -> dict[str, Any]:
    row = timeline_row(case_id, principal, title, **entry)
    conn.execute(case_timeline.insert().values(**row))
    return history.entry_json(SimpleNamespace(**row))


def create_case(engine: Engine, values: dict[str, Any], principal: str) -> str:
    """Store a new case from ``values`` (title, description, severity, status, assignee, tags,
    alert_ids); its id. Raises UnknownAlerts."""
    now = time.time()
    case_id = str(uuid.uuid4())
    alert_ids = values.get("alert_ids", [])
    with engine.begin() as conn:
        _lock_alerts(conn, alert_ids)
        conn.execute(
            cases.insert().values(
                id=case_id,
                title=values["title"],
                description=values.get("description", ""),
                severity=values["severity"],
                status=values["status"],
                assignee=values.get("assignee"),
                tags=orjson.dumps(values.get("tags", [])).decode(),
                created_by=principal[:PRINCIPAL_WIDTH],
                created_at=now,
                updated_at=now,
                closed_at=now if values["status"] == "closed" else None,
            )
        )
        _set_links(conn, case_id, alert_ids)
        _add_entry(conn, case_id, principal, "Case created", now=now)
    return case_id


CHANGEABLE = ("title", "description", "severity", "status", "assignee", "tags", "alert_ids")


def update_case(
    engine: Engine, case_id: str, changes: dict[str, Any], principal: str, title: str = ""
) -> list[str] | None:
    """Apply ``changes`` (fields of :data:`CHANGEABLE`); the names of the fields whose value
    changed (each change is one timeline entry naming them), or None when there is no such
    case. Status ``closed`` sets ``closed_at``; any other status clears it. Raises UnknownAlerts."""
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise ValueError(f"not a changeable case field: {', '.join(sorted(unknown))}")
    now = time.time()
    with engine.begin() as conn:
        # an unknown case is told first, whatever alerts the change names; a case is never
        # deleted, so one seen here is still there once locked
        if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
            return None
        if "alert_ids" in changes:
            _lock_alerts(conn, changes["alert_ids"])
        row = _lock_case(conn, case_id)
        if row is None:
            return None
        current = _case(row, _links(conn, [case_id])[case_id])
        changed = sorted(name for name, value in changes.items() if current[name] != value)
        if not changed:
            return []
        values = {name: changes[name] for name in changed if name != "alert_ids"}
        if "tags" in values:
            values["tags"] = orjson.dumps(values["tags"]).decode()
        if "status" in values:
            values["closed_at"] = now if values["status"] == "closed" else None
        conn.execute(update(cases).where(cases.c.id == case_id).values(**values, updated_at=now))
        if "alert_ids" in changed:
            _set_links(conn, case_id, changes["alert_ids"])
        _add_entry(conn, case_id, principal, title or f"Changed {', '.join(changed)}", fields=changed, now=now)
    return changed


def link_alert(engine: Engine, case_id: str, alert_id: str, principal: str, title: str, max_alerts: int) -> bool | None:
    """Add one alert to the end of a case's links, under the case's lock (two writers adding
    different alerts both land, where replacing the whole list would lose one): True when it
    was linked, False when it was already, None when there is no such case. Raises
    UnknownAlerts, CaseFull."""
    now = time.time()
    with engine.begin() as conn:
        if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
            return None
        _lock_alerts(conn, [alert_id])  # alerts first, then the case: update_case's order
        if _lock_case(conn, case_id) is None:
            return None
        linked = _links(conn, [case_id])[case_id]
        if alert_id in linked:
            return False
        if len(linked) >= max_alerts:
            raise CaseFull(f"alert_ids: the case already holds {max_alerts} alerts, the most it may")
        last = conn.execute(select(func.max(case_alerts.c.position)).where(case_alerts.c.case_id == case_id)).scalar()
        conn.execute(case_alerts.insert().values(case_id=case_id, alert_id=alert_id, position=(last or 0) + 1))
        conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now))
        _add_entry(conn, case_id, principal, title, fields=["alert_ids"], now=now)
    return True


def add_comment(engine: Engine, case_id: str, body: str, principal: str) -> dict[str, Any] | None:
    """The stored comment, or None when there is no such case. Raises CaseFull."""
    now = time.time()
    with engine.begin() as conn:
        if _lock_case(conn, case_id) is None:
            return None
        if history.count(conn, "comments", case_id) >= MAX_COMMENTS:
            raise CaseFull(f"comments: the case already holds {MAX_COMMENTS} comments, the most it may")
        row = {"id": str(uuid.uuid4()), "case_id": case_id, "author": principal[:PRINCIPAL_WIDTH], "body": body}
        conn.execute(case_comments.insert().values(**row, created_at=now))
        conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now))
    return {"id": row["id"], "author": row["author"], "body": body, "created_at": iso(now)}


def add_entry(
    engine: Engine, case_id: str, principal: str, kind: str, title: str, description: str, ts: float | None
) -> dict[str, Any] | None:
    """The stored timeline entry, or None when there is no such case. Raises CaseFull."""
    now = time.time()
    with engine.begin() as conn:
        if _lock_case(conn, case_id) is None:
            return None
        held = conn.execute(
            select(func.count())
            .select_from(case_timeline)
            .where(case_timeline.c.case_id == case_id, case_timeline.c.kind != "change")
        ).scalar_one()
        if held >= MAX_ENTRIES:
            raise CaseFull(f"timeline: the case already holds {MAX_ENTRIES} entries, the most it may")
        entry = _add_entry(conn, case_id, principal, title, kind=kind, description=description, ts=ts, now=now)
        conn.execute(update(cases).where(cases.c.id == case_id).values(updated_at=now))
    return entry
