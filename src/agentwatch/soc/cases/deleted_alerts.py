"""What an alert's deletion does to the cases linking it: the links go, and each such case
records it, in the deletion's own transaction (``DELETE /api/v1/alerts/{id}`` and a session's
deletion both come here through :func:`agentwatch.alerts.recorder.delete_dependents`).

Each case that loses links gets ``updated_at`` = now and one ``change`` entry (``fields``:
``["alert_ids"]``) by :data:`AUTHOR`, naming the alerts it lost in the case's order. Like every
automatic ``change`` entry it is outside the cap on analysts' entries, so a case whose timeline
is full still records it: a deletion is never refused because of a case.

Locks: the caller holds the deleted alerts' dedup-key locks (so no new link to them can be made
meanwhile); the cases are locked after them, in id order, as every other path takes a case's
lock last.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Connection, delete, false, select, update

from agentwatch.soc.cases.schema import case_alerts, case_timeline, cases
from agentwatch.soc.cases.store import timeline_row

AUTHOR = "system:alert-deletion"  # the entry's author: the server, on the deletion's behalf
MAX_DESCRIPTION = 10_000  # characters, as an analyst's description: the ids beyond are counted


def _chunks(ids: Sequence[str], size: int) -> list[Sequence[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def describe(alert_ids: list[str]) -> tuple[str, str]:
    """The entry's title and description for a case that lost ``alert_ids`` (in its order)."""
    if len(alert_ids) == 1:
        title = f"Alert {alert_ids[0]} removed: the alert was deleted"
    else:
        title = f"{len(alert_ids)} alerts removed: the alerts were deleted"
    lines: list[str] = []
    used = 0  # characters of "\n".join(lines)
    for i, alert_id in enumerate(alert_ids):
        after = len(alert_ids) - i - 1
        grown = used + (1 if lines else 0) + len(alert_id)
        if grown + (len(f"\nand {after} more") if after else 0) > MAX_DESCRIPTION:
            lines.append(f"and {after + 1} more")  # fits: the line before left room for it
            break
        lines.append(alert_id)
        used = grown
    return title, "\n".join(lines)


def unlink(conn: Connection, alert_ids: Sequence[str], chunk: int) -> int:
    """Remove every link to ``alert_ids`` (being deleted in ``conn``'s transaction) and record it
    on each case that had one, ``chunk`` ids per statement; how many cases were touched."""
    if conn.dialect.name == "sqlite":  # the write lock first, so what is read below stays true
        conn.execute(update(cases).where(false()).values(updated_at=cases.c.updated_at))
    linking: set[str] = set()
    for part in _chunks(alert_ids, chunk):
        linking.update(conn.execute(select(case_alerts.c.case_id).where(case_alerts.c.alert_id.in_(part))).scalars())
    if not linking:
        return 0
    ordered = sorted(linking)
    for part in _chunks(ordered, chunk):  # PostgreSQL: the cases' rows, in id order (SQLite: no-op)
        conn.execute(select(cases.c.id).where(cases.c.id.in_(part)).order_by(cases.c.id).with_for_update()).all()
    lost: dict[str, list[tuple[int, str]]] = {}
    for part in _chunks(alert_ids, chunk):
        # read again under the cases' locks: a change may have replaced a case's links meanwhile
        where = case_alerts.c.alert_id.in_(part)
        for case_id, alert_id, position in conn.execute(
            select(case_alerts.c.case_id, case_alerts.c.alert_id, case_alerts.c.position).where(where)
        ):
            lost.setdefault(case_id, []).append((position, alert_id))
        conn.execute(delete(case_alerts).where(where))
    if not lost:
        return 0
    now = time.time()
    rows = []
    for case_id in sorted(lost):
        title, description = describe([alert_id for _pos, alert_id in sorted(lost[case_id])])
        rows.append(timeline_row(case_id, AUTHOR, title, description=description, fields=["alert_ids"], now=now))
    for part in _chunks(sorted(lost), chunk):
        conn.execute(update(cases).where(cases.c.id.in_(part)).values(updated_at=now))
    conn.execute(case_timeline.insert(), rows)
    return len(lost)
