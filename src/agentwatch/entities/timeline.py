"""An entity's timeline: the events naming it in a time window, newest first, and the other
entities those events name (related entities, with how many of the events name each).

The work is bounded by the window and the limit: the events are read newest first along the
events' time index and the read stops at ``limit + 1`` rows (the one more says whether the
window holds more); no count of the whole window is made. The answer is bounded in bytes too
(an event may hold 1 MiB, and ``limit`` goes to 10,000): the rows are fetched a few at a time
and the read stops before the events' stored text (body and entities) would pass
``MAX_ANSWER_BYTES``, the first event always answered. Related entities are counted over the
events answered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, select

from agentwatch.store.schema import events

MAX_RELATED = 50
MAX_ANSWER_BYTES = 16 * 2**20  # characters of event text (body and entities) answered at most
FETCH_ROWS = 64  # rows fetched from the store at a time
# what an event of the answer shows (``api.v1_events.event_json``): not its raw wire form
SHOWN = [
    events.c[name]
    for name in (
        "event_id",
        "event_type",
        "ts",
        "received_at",
        "source_format",
        "severity",
        "session_id",
        "agent",
        "host",
        "process_name",
        "trace_id",
        "entities",
        "body",
    )
]


@dataclass(frozen=True)
class TimelineQuery:
    entity_id: str
    since: float | None = None  # event time, seconds, inclusive
    until: float | None = None  # inclusive
    source_format: str | None = None
    min_severity: int | None = None
    limit: int = 1000


def event_rows(engine: Engine, q: TimelineQuery) -> tuple[list[dict[str, Any]], bool]:
    """The stored rows of the events of ``q``, newest first, and whether more were left out
    (beyond the limit, or beyond ``MAX_ANSWER_BYTES``)."""
    stmt = select(*SHOWN).where(events.c.entity_ids.contains(q.entity_id, autoescape=True))
    if q.since is not None:
        stmt = stmt.where(events.c.ts >= q.since)
    if q.until is not None:
        stmt = stmt.where(events.c.ts <= q.until)
    if q.source_format is not None:
        stmt = stmt.where(events.c.source_format == q.source_format)
    if q.min_severity is not None:
        stmt = stmt.where(events.c.severity >= q.min_severity)
    stmt = stmt.order_by(events.c.ts.desc(), events.c.seq.desc()).limit(q.limit + 1)
    stmt = stmt.execution_options(yield_per=FETCH_ROWS)
    rows: list[dict[str, Any]] = []
    used = 0
    with engine.connect() as conn:
        result = conn.execute(stmt)
        try:  # closed before the connection: on PostgreSQL it is a server-side cursor
            for r in result:
                size = len(r.body) + len(r.entities)
                if len(rows) == q.limit or (rows and used + size > MAX_ANSWER_BYTES):
                    return rows, True
                rows.append(dict(r._mapping))
                used += size
        finally:
            result.close()
    return rows, False


def related(rows: list[dict[str, Any]], entity_id: str) -> list[dict[str, Any]]:
    """The other entities named by ``rows``, most often named first (then by type and value),
    each with ``count``: how many of the rows name it; at most ``MAX_RELATED``."""
    counts: Counter[str] = Counter()
    named: dict[str, dict[str, Any]] = {}
    for r in rows:
        for ent in orjson.loads(r["entities"]):
            eid = ent.get("id")
            if eid == entity_id or not isinstance(eid, str):
                continue
            counts[eid] += 1
            named.setdefault(eid, ent)
    order = sorted(counts, key=lambda i: (-counts[i], str(named[i].get("type")), str(named[i].get("value")), i))
    return [
        {"id": i, "type": named[i].get("type"), "value": named[i].get("value"), "count": counts[i]}
        for i in order[:MAX_RELATED]
    ]
