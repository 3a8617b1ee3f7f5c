"""One pass of the SLA watch: see what became of the alerts, then record the breaches.

The alert row keeps only its current status and its last update, so the watch keeps what the
targets need in its own table ``sla_marks``: when an alert first left ``open`` (acknowledged,
or closed straight away) and when it was closed. A mark is taken from the alert's
``updated_at`` the first time the watch sees the new status, which is the time of the change
itself unless a repeat of the alert came in between (then it is later, by at most the watch's
interval). Reading the alerts, rather than hooking the change path, catches every path that
changes an alert (the API, playbooks, another node). A reopened alert loses its
``closed_at``; its first acknowledgement stays.

A breach is recorded once per alert and kind (``acknowledge``, ``resolve``), with the target in
force when it was recorded: the alert's clock starts at its ``created_at`` (when agentwatch
stored it, not the event time of what it holds, so a replay of old events is not late at
once) and the breach is due ``limit`` minutes later. Targets judge going forward: a clock that
stopped before the target's ``effective_at`` is never judged by it, and a clock still running
when a shorter target came in breaches at ``effective_at`` at the earliest, not in the past
(``breached_at = max(due_at, effective_at)``). Recorded breaches keep their limit whatever the
targets become; a disabled band records no new breach, and its running ones still end when
their alert is acknowledged or closed (or ``deleted``, when the alert goes), even once the
alert is older than the watched age (``sla.max_age_days``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, exists, literal, or_, select, update

from agentwatch.soc.sla import store
from agentwatch.soc.sla.bands import BANDS
from agentwatch.soc.sla.schema import sla_events, sla_marks
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.upsert import insert_ignore

EVENT_NS = uuid.UUID("5d1b0c62-3f0e-4f7e-9a55-2b8f4c1d7e90")
PAGE = 2_000
KINDS = {"acknowledge": "acknowledged_at", "resolve": "closed_at"}


def event_id(alert_id: str, kind: str) -> str:
    return str(uuid.uuid5(EVENT_NS, f"{alert_id}\x1f{kind}"))


def reconcile_marks(conn: Connection, oldest: float) -> int:
    """Take marks for the watched alerts whose status the marks do not show yet; how many."""
    a, m, e = alerts.c, sla_marks.c, sla_events.c
    # an alert past the watched age still has its running breaches ended when it is handled;
    # each side of the OR is an index range (ix_alerts_created, ix_sla_events_running)
    running = a.id.in_(select(e.alert_id).where(e.ended_at.is_(None)))
    unseen = (
        select(a.id, a.status, a.updated_at)
        .select_from(alerts.outerjoin(sla_marks, m.alert_id == a.id))
        .where(
            or_(a.created_at >= oldest, running),
            or_(
                and_(a.status != "open", m.alert_id.is_(None)),
                and_(a.status == "closed", m.closed_at.is_(None)),
            ),
        )
        .limit(PAGE)
    )
    rows = conn.execute(unseen).all()
    fresh = [
        {"alert_id": r.id, "acknowledged_at": r.updated_at, "closed_at": r.updated_at if r.status == "closed" else None}
        for r in rows
    ]
    insert_ignore(conn, sla_marks, fresh, ["alert_id"])
    closed = [{"aid": r.id, "at": r.updated_at} for r in rows if r.status == "closed"]
    if closed:  # marked before as acknowledged only
        stmt = update(sla_marks).where(m.alert_id == bindparam("aid"), m.closed_at.is_(None))
        conn.execute(stmt.values(closed_at=bindparam("at")), closed)
    # reopened: no longer closed
    reopened = (m.closed_at.is_not(None), exists(select(a.id).where(a.id == m.alert_id, a.status != "closed")))
    if _any(conn, sla_marks, *reopened):
        conn.execute(update(sla_marks).where(*reopened).values(closed_at=None))
    return len(rows)


def _any(conn: Connection, table: Any, *cond: Any) -> bool:
    """Whether a row meets ``cond``: asked before writing, so that a pass with nothing to do
    only reads (a write, even of no row, takes SQLite's one write lock)."""
    return conn.execute(select(literal(1)).select_from(table).where(*cond).limit(1)).first() is not None


def _record(conn: Connection, target: store.Target, kind: str, now: float, oldest: float, after: str) -> list[str]:
    """Record the breaches of one page of alerts, those with an id above ``after``; the ids of
    the alerts it looked at, in order (a full page: there may be more)."""
    band = next(b for b in BANDS if b.id == target.band)
    limit_min = target.acknowledge_minutes if kind == "acknowledge" else target.resolve_minutes
    limit_s = limit_min * 60.0
    a, m, e = alerts.c, sla_marks.c, sla_events.c
    stopped = getattr(m, KINDS[kind])
    due = a.created_at + literal(limit_s)
    already = select(e.id).where(e.alert_id == a.id, e.kind == kind)
    stmt = (
        select(a.id, a.severity, a.created_at, stopped.label("stopped"))
        .select_from(alerts.outerjoin(sla_marks, m.alert_id == a.id))
        .where(
            a.severity >= band.low,
            a.severity <= band.high,
            a.created_at >= oldest,
            a.created_at <= now - limit_s,
            or_(stopped.is_(None), and_(stopped > due, stopped >= target.effective_at)),
            ~exists(already),
            a.id > after,
        )
        .order_by(a.id)
        .limit(PAGE)
    )
    rows = conn.execute(stmt).all()
    out: list[dict[str, Any]] = []
    for r in rows:
        due_at = r.created_at + limit_s
        ended = r.stopped
        out.append(
            {
                "id": event_id(r.id, kind),
                "alert_id": r.id,
                "kind": kind,
                "band": band.id,
                "severity": r.severity,
                "limit_minutes": limit_min,
                "started_at": r.created_at,
                "due_at": due_at,
                "breached_at": max(due_at, target.effective_at),
                "ended_at": ended,
                "end_reason": None if ended is None else ("acknowledged" if kind == "acknowledge" else "closed"),
            }
        )
    insert_ignore(conn, sla_events, out, ["id"])
    return [r.id for r in rows]


def _forget_gone(conn: Connection, now: float) -> None:
    """End the running breaches of deleted alerts and drop their marks (their breaches stay,
    as history). An alert id made again (the same finding replayed after its alert was
    deleted) is another alert, told apart by its later creation: the first one's breaches end
    as deleted and its marks go, so the new one is judged afresh."""
    a, e, m = alerts.c, sla_events.c, sla_marks.c
    same = exists(select(a.id).where(a.id == e.alert_id, a.created_at == e.started_at))
    gone = (e.ended_at.is_(None), ~same)
    if _any(conn, sla_events, *gone):
        conn.execute(update(sla_events).where(*gone).values(ended_at=now, end_reason="deleted"))
    orphan = ~exists(select(a.id).where(a.id == m.alert_id, a.created_at <= m.acknowledged_at))
    if _any(conn, sla_marks, orphan):
        conn.execute(delete(sla_marks).where(orphan))


def _end_running(conn: Connection) -> None:
    e, m = sla_events.c, sla_marks.c
    for kind, column in KINDS.items():
        stopped = getattr(m, column)
        at = select(stopped).where(m.alert_id == e.alert_id).scalar_subquery()
        reason = "acknowledged" if kind == "acknowledge" else "closed"
        ended = (
            e.ended_at.is_(None),
            e.kind == kind,
            exists(select(m.alert_id).where(m.alert_id == e.alert_id, stopped.is_not(None))),
        )
        if _any(conn, sla_events, *ended):
            conn.execute(update(sla_events).where(*ended).values(ended_at=at, end_reason=reason))


def sweep(engine: Engine, now: float, max_age_s: float) -> int:
    """One pass at time ``now``: marks, then breaches of every enabled band; how many recorded.

    Each page commits on its own: on SQLite a transaction holds the one write lock from its
    first write to its end, and ingest waits for it, so a pass with much to do (the first one
    over a full store) must not keep it for the whole pass. Every step can be run again."""
    oldest = now - max_age_s
    recorded = 0
    with engine.begin() as conn:
        _forget_gone(conn, now)
    while True:
        with engine.begin() as conn:
            if reconcile_marks(conn, oldest) < PAGE:
                break
    with engine.begin() as conn:
        _end_running(conn)
        found = store.targets_in(conn)
    for target, _who in found.values():
        # a target changed after this pass's own time (a clock stepped back, another node's
        # skew) is not in force yet for it: the next pass applies it
        if not target.enabled or target.effective_at > now:
            continue
        for kind in KINDS:
            after = ""  # alert ids, in order: each page goes on from the last one
            while True:
                with engine.begin() as conn:
                    seen = _record(conn, target, kind, now, oldest, after)
                recorded += len(seen)
                if len(seen) < PAGE:
                    break
                after = seen[-1]
    return recorded
