"""Event retention: the events stored longer ago than ``maintenance.events_retention_days`` go.

The age is the time the server stored an event (``received_at``), not the event's own time: a
sensor that sends last year's events today has them kept for the whole period, and a clock
that is wrong on an agent cannot have its events deleted on arrival.

Events are deleted oldest first, one page per transaction (short write locks, so ingest goes
on between two pages; on a SQLite file each page takes the pipeline's writer turn, as a commit
does), in ``seq`` order: the order of their commits, which follows the order
in which they were received (inside one commit it need not). A page holding any event still
inside the period ends the pass; an older event committed after that page (two nodes
committing at once) goes in a later pass.
What was derived from the deleted events loses them as a session delete does: the event-type
totals of ``/api/stats`` and the entity index's counts. Alerts, AOP session rows and process
rows stay; an alert's evidence list then names events that are gone.
"""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import Engine, select

from agentwatch.entities import index as entity_index
from agentwatch.store import counters as counters_store
from agentwatch.store.events import delete_where
from agentwatch.store.schema import events
from agentwatch.store.writer_turns import turn_of

PAGE = 1000
DAY_S = 86_400.0


def purge_events(engine: Engine, cutoff: float, stopping: threading.Event | None = None) -> int:
    """Delete the events stored before ``cutoff`` (epoch seconds); returns how many went."""
    removed = 0
    after = 0  # the seq of the last event looked at
    while stopping is None or not stopping.is_set():
        with turn_of(engine), engine.begin() as conn:  # a page's delete waits for the commits' turn
            page = conn.execute(
                select(events.c.seq, events.c.event_type, events.c.entity_ids, events.c.received_at)
                .where(events.c.seq > after)
                .order_by(events.c.seq)
                .limit(PAGE)
            ).all()
            doomed = [row for row in page if row.received_at < cutoff]
            if doomed:
                counters_store.take(conn, Counter(("event_type", r.event_type) for r in doomed))
                entity_index.forget(conn, [r.entity_ids for r in doomed])
                delete_where(conn, events.c.seq.in_([r.seq for r in doomed]))
                removed += len(doomed)
        if len(doomed) < PAGE:  # reached events inside the period, or the end of the table
            break
        after = page[-1].seq
    return removed
