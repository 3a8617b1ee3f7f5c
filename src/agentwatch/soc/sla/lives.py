"""Where the lives of an alert begin and end, for the SLA watch.

An alert's first life starts when agentwatch stores it (``created_at``). It starts a new one
when the watch, having seen it closed, sees it not closed any more (an analyst or a playbook
reopened it): both its clocks start again at that moment (taken from the alert's
``updated_at``, like every mark), its acknowledge clock already stopped when it was reopened
as ``acknowledged``. An alert deleted and made again with the same id (the same finding
replayed) is another alert, told apart by its later ``created_at``. Every breach belongs to one
life (its ``started_at``), and the unique index on (alert, kind, life) keeps one per life
whichever nodes record it.

A close and a reopening that both fall between two passes are not seen: the life goes on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, literal, select, update

from agentwatch.soc.sla.schema import sla_events, sla_marks
from agentwatch.store.alerts_schema import alerts

PAGE = 2_000


def any_row(conn: Connection, table: Any, *cond: Any) -> bool:
    """Whether a row meets ``cond``: asked before writing, so that a pass with nothing to do
    only reads (a write, even of no row, takes SQLite's one write lock)."""
    return conn.execute(select(literal(1)).select_from(table).where(*cond).limit(1)).first() is not None


def forget_gone(conn: Connection, now: float) -> None:
    """End the running breaches of deleted alerts and drop their marks (their breaches stay,
    as history). A breach or mark belongs to the stored alert of its id only when it is not
    older than that alert's creation: the first alert of an id made again keeps neither."""
    a, e, m = alerts.c, sla_events.c, sla_marks.c
    same = exists(select(a.id).where(a.id == e.alert_id, a.created_at <= e.started_at))
    gone = (e.ended_at.is_(None), ~same)
    if any_row(conn, sla_events, *gone):
        conn.execute(update(sla_events).where(*gone).values(ended_at=now, end_reason="deleted"))
    orphan = ~exists(select(a.id).where(a.id == m.alert_id, a.created_at <= m.started_at))
    if any_row(conn, sla_marks, orphan):
        conn.execute(delete(sla_marks).where(orphan))


def start_lives(conn: Connection) -> int:
    """Start a new life for the alerts seen closed and now reopened (a page of them, in id
    order); how many. The breaches of the life that ends, should one still run (a pass that
    stopped after taking the close), end at its marks first."""
    a, m, e = alerts.c, sla_marks.c, sla_events.c
    rows = conn.execute(
        select(m.alert_id, m.started_at, m.acknowledged_at, m.closed_at, a.status, a.updated_at)
        .join(alerts, a.id == m.alert_id)
        .where(m.closed_at.is_not(None), a.status != "closed")
        .order_by(m.alert_id)
        .limit(PAGE)
    ).all()
    if not rows:
        return 0
    for kind, column, reason in (
        ("acknowledge", "acknowledged_at", "acknowledged"),
        ("resolve", "closed_at", "closed"),
    ):
        # the life that ends (and older ones) only: another node may have started the new
        # life since this one read the mark, and recorded a breach of it already
        stmt = update(sla_events).where(
            e.alert_id == bindparam("aid"), e.kind == kind, e.ended_at.is_(None), e.started_at <= bindparam("was")
        )
        conn.execute(
            stmt.values(ended_at=bindparam("at"), end_reason=reason),
            [{"aid": r.alert_id, "was": r.started_at, "at": getattr(r, column)} for r in rows],
        )
    # only a mark still showing the life read above, closed: another node that started the
    # new life first has changed it (PostgreSQL checks again once its row lock is released)
    stmt = update(sla_marks).where(
        m.alert_id == bindparam("aid"), m.started_at == bindparam("was"), m.closed_at.is_not(None)
    )
    conn.execute(
        stmt.values(started_at=bindparam("at"), acknowledged_at=bindparam("ack"), closed_at=None),
        [
            {
                "aid": r.alert_id,
                "was": r.started_at,
                "at": r.updated_at,
                "ack": None if r.status == "open" else r.updated_at,
            }
            for r in rows
        ],
    )
    return len(rows)
