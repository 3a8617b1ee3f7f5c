"""One pass of the SLA watch: see what became of the alerts, then record the breaches.

The alert row keeps only its current status and its last update, so the watch keeps what the
targets need in its own table ``sla_marks``: when the alert's current life started (see
:mod:`lives`: its creation, or when it was seen reopened), and when in that life it first left
``open`` (acknowledged, or closed straight away) and when it was closed. A mark is taken from
the alert's ``updated_at`` the first time the watch sees the new status, which is the time of
the change itself unless a repeat of the alert came in between (then it is later, by at most
the watch's interval). Reading the alerts, rather than hooking the change path, catches every
path that changes an alert (the API, playbooks, another node).

A breach is recorded once per alert, kind (``acknowledge``, ``resolve``) and life, with the
target in force when it was recorded: the clock starts at the life's start (for the first
life the alert's ``created_at``: when agentwatch stored it, not the event time of what it
holds, so a replay of old events is not late at once) and the breach is due ``limit`` minutes
later. Each limit judges going forward from its own start (:mod:`store`): a clock that stopped
before it is never judged by it, and a clock still running when a shorter limit came in
breaches at that start at the earliest, not in the past (``breached_at = max(due_at,
start)``). Recorded breaches keep their limit whatever the targets become; a disabled band
records no new breach, and its running ones still end when their alert is acknowledged or
closed (or ``deleted``, when the alert goes), even once the alert is older than the watched age
(``sla.max_age_days``, counted from the start of the alert's life).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, literal, or_, select, update

from agentwatch.soc.sla import store
from agentwatch.soc.sla.bands import BANDS
from agentwatch.soc.sla.lives import PAGE, any_row, forget_gone, start_lives
from agentwatch.soc.sla.schema import sla_events, sla_marks
from agentwatch.store.alerts_schema import alerts
from agentwatch.store.upsert import insert_ignore

EVENT_NS = uuid.UUID("5d1b0c62-3f0e-4f7e-9a55-2b8f4c1d7e90")
KINDS = {"acknowledge": "acknowledged_at", "resolve": "closed_at"}
__all__ = ["PAGE", "event_id", "sweep"]


def event_id(alert_id: str, kind: str, started_at: float) -> str:
    """The breach's id, the same on every node: of its alert, kind and life (the start read
    from the store, so every node has the same float). Breaches recorded before revision
    0762 keep theirs, of alert and kind only."""
    return str(uuid.uuid5(EVENT_NS, f"{alert_id}\x1f{kind}\x1f{started_at!r}"))


def _watched(oldest: float) -> Any:
    """The alerts whose current life started inside the watched period: created in it (an
    index range of ``ix_alerts_created``) or reopened in it (of ``ix_sla_marks_started``)."""
    life = sla_marks.alias("life")
    return or_(
        alerts.c.created_at >= oldest, alerts.c.id.in_(select(life.c.alert_id).where(life.c.started_at >= oldest))
    )


def reconcile_marks(conn: Connection, oldest: float) -> int:
    """Take marks for the watched alerts whose status the marks do not show yet; how many."""
    a, m, e = alerts.c, sla_marks.c, sla_events.c
    # an alert past the watched age still has its running breaches ended when it is handled;
    # each side of the OR is an index range (ix_alerts_created, ix_sla_marks_started,
    # ix_sla_events_running)
    running = a.id.in_(select(e.alert_id).where(e.ended_at.is_(None)))
    unseen = (
        select(a.id, a.status, a.created_at, a.updated_at)
        .select_from(alerts.outerjoin(sla_marks, m.alert_id == a.id))
        .where(
            or_(_watched(oldest), running),
            or_(
                and_(a.status != "open", m.acknowledged_at.is_(None)),
                and_(a.status == "closed", m.closed_at.is_(None)),
            ),
        )
        .limit(PAGE)
    )
    rows = conn.execute(unseen).all()
    fresh = [
        {
            "alert_id": r.id,
            "acknowledged_at": r.updated_at,
            "closed_at": r.updated_at if r.status == "closed" else None,
            "started_at": r.created_at,
        }
        for r in rows
    ]
    insert_ignore(conn, sla_marks, fresh, ["alert_id"])
    # marked before: reopened as open, now acknowledged (or closed); or acknowledged only
    for column, seen in (("acknowledged_at", rows), ("closed_at", [r for r in rows if r.status == "closed"])):
        if seen:
            stmt = update(sla_marks).where(m.alert_id == bindparam("aid"), getattr(m, column).is_(None))
            conn.execute(stmt.values({column: bindparam("at")}), [{"aid": r.id, "at": r.updated_at} for r in seen])
    return len(rows)


def _record(
    conn: Connection, target: store.Target, kind: str, now: float, oldest: float, after: str, notify: bool
) -> list[str]:
    """Record the breaches of one page of alerts, those with an id above ``after``; the ids of
    the alerts it looked at, in order (a full page: there may be more). A breach waits for its
    notice (:mod:`outbox`) when ``notify`` and it is still running; else it is settled at once."""
    band = next(b for b in BANDS if b.id == target.band)
    limit_min = target.minutes(kind)
    limit_s = limit_min * 60.0
    effective = target.starts(kind)
    a, m, e = alerts.c, sla_marks.c, sla_events.c
    stopped = getattr(m, KINDS[kind])
    life = func.coalesce(m.started_at, a.created_at)  # an alert never handled has no mark yet
    due = life + literal(limit_s)
    already = select(e.id).where(e.alert_id == a.id, e.kind == kind, e.started_at == life)
    stmt = (
        select(a.id, a.severity, life.label("life"), stopped.label("stopped"))
        .select_from(alerts.outerjoin(sla_marks, m.alert_id == a.id))
        .where(
            a.severity >= band.low,
            a.severity <= band.high,
            _watched(oldest),
            a.created_at <= now - limit_s,  # a life starts at its alert's creation or later
            life <= now - limit_s,
            or_(stopped.is_(None), and_(stopped > due, stopped >= effective)),
            ~exists(already),
            a.id > after,
        )
        .order_by(a.id)
        .limit(PAGE)
    )
    rows = conn.execute(stmt).all()
    out: list[dict[str, Any]] = []
    for r in rows:
        due_at = r.life + limit_s
        ended = r.stopped
        out.append(
            {
                "id": event_id(r.id, kind, r.life),
                "alert_id": r.id,
                "kind": kind,
                "band": band.id,
                "severity": r.severity,
                "limit_minutes": limit_min,
                "started_at": r.life,
                "due_at": due_at,
                "breached_at": max(due_at, effective),
                "ended_at": ended,
                "end_reason": None if ended is None else ("acknowledged" if kind == "acknowledge" else "closed"),
                "notify_state": "off" if not notify else (None if ended is None else "ended"),
            }
        )
    # the id is of (alert, kind, life), the key of the unique index: a breach another node
    # recorded meanwhile is the same row, and left as it is
    insert_ignore(conn, sla_events, out, ["id"])
    return [r.id for r in rows]


def _end_running(conn: Connection) -> None:
    """End the running breaches whose clock the marks of their life show stopped."""
    e, m = sla_events.c, sla_marks.c
    for kind, column in KINDS.items():
        stopped = getattr(m, column)
        mine = (m.alert_id == e.alert_id, m.started_at == e.started_at)
        at = select(stopped).where(*mine).scalar_subquery()
        reason = "acknowledged" if kind == "acknowledge" else "closed"
        ended = (e.ended_at.is_(None), e.kind == kind, exists(select(m.alert_id).where(*mine, stopped.is_not(None))))
        if any_row(conn, sla_events, *ended):
            conn.execute(update(sla_events).where(*ended).values(ended_at=at, end_reason=reason))


def _pages(engine: Engine, step: Any) -> None:
    """Run ``step(conn)`` a transaction at a time until it does less than a page."""
    while True:
        with engine.begin() as conn:
            if step(conn) < PAGE:
                return


def sweep(engine: Engine, now: float, max_age_s: float, notify: bool = False) -> int:
    """One pass at time ``now``: lives and marks, then breaches of every enabled band; how many
    recorded (to be notified when ``notify``: see :mod:`outbox`).

    Each page commits on its own: on SQLite a transaction holds the one write lock from its
    first write to its end, and ingest waits for it, so a pass with much to do (the first one
    over a full store) must not keep it for the whole pass. Every step can be run again."""
    oldest = now - max_age_s
    recorded = 0
    with engine.begin() as conn:
        forget_gone(conn, now)
    _pages(engine, start_lives)
    _pages(engine, lambda conn: reconcile_marks(conn, oldest))
    with engine.begin() as conn:
        _end_running(conn)
        found = store.targets_in(conn)
    for target, _who in found.values():
        if not target.enabled:
            continue
        for kind in KINDS:
            # a limit changed after this pass's own time (a clock stepped back, another node's
            # skew) is not in force yet for it: the next pass applies it
            if target.starts(kind) > now:
                continue
            after = ""  # alert ids, in order: each page goes on from the last one
            while True:
                with engine.begin() as conn:
                    seen = _record(conn, target, kind, now, oldest, after, notify)
                recorded += len(seen)
                if len(seen) < PAGE:
                    break
                after = seen[-1]
    return recorded
