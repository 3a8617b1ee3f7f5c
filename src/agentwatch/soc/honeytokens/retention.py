"""Touch retention: the honeytoken touches older than ``maintenance.touches_retention_days`` go.

The age is the touch's ``ts``: the time of the event that held the token (pipeline), or the
time the tracking URL was fetched (track). Touches are deleted oldest first, one page per
transaction, in (``ts``, ``id``) order. A touch whose alert is not ``closed``, or whose alert
is linked to a case that is not ``closed``, is held: it stays, and the pass goes on past it,
so it goes in a later pass once both are closed. A touch that lost its alert (the alert was
deleted, or never stored) is not held.

The token keeps its ``touches`` count and ``last_touched_at``: they tell that it was touched,
and when last, after the rows are gone. ``/api/v1/honeytokens/stats`` counts the rows kept.
"""

from __future__ import annotations

import threading

from sqlalchemy import Connection, Engine, and_, delete, or_, select

from agentwatch.soc.cases.schema import case_alerts, cases
from agentwatch.soc.honeytokens.schema import honeytoken_events
from agentwatch.store.alerts_schema import alerts

PAGE = 1000
E = honeytoken_events.c


def _held(conn: Connection, alert_ids: list[str]) -> set[str]:
    """Which of these alerts still hold their touches: not closed, or linked to a case not closed."""
    if not alert_ids:
        return set()
    open_alerts = select(alerts.c.id).where(and_(alerts.c.id.in_(alert_ids), alerts.c.status != "closed"))
    in_open_case = (
        select(case_alerts.c.alert_id)
        .join(cases, cases.c.id == case_alerts.c.case_id)
        .where(and_(case_alerts.c.alert_id.in_(alert_ids), cases.c.status != "closed"))
    )
    return set(conn.execute(open_alerts).scalars()) | set(conn.execute(in_open_case).scalars())


def purge_touches(engine: Engine, cutoff: float, stopping: threading.Event | None = None) -> int:
    """Delete the touches older than ``cutoff`` (epoch seconds) that nothing open holds; how many went."""
    removed = 0
    after: tuple[float, str] | None = None  # (ts, id) of the last touch looked at
    while stopping is None or not stopping.is_set():
        stmt = select(E.id, E.ts, E.alert_id).where(E.ts < cutoff)
        if after is not None:
            stmt = stmt.where(or_(E.ts > after[0], and_(E.ts == after[0], E.id > after[1])))
        with engine.begin() as conn:
            page = conn.execute(stmt.order_by(E.ts, E.id).limit(PAGE)).all()
            held = _held(conn, sorted({r.alert_id for r in page if r.alert_id is not None}))
            doomed = [r.id for r in page if r.alert_id is None or r.alert_id not in held]
            if doomed:
                removed += conn.execute(delete(honeytoken_events).where(E.id.in_(doomed))).rowcount or 0
        if len(page) < PAGE:  # the last touch older than the cutoff was looked at
            break
        after = (page[-1].ts, page[-1].id)
    return removed
