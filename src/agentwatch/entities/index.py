"""The entity index, kept in the transaction that stores the events naming the entities.

A pipeline part like a stage: it changes no event (``process`` hands the batch on) and defines
``in_commit``, which the commit calls with exactly the events stored for the first time, so a
resent event is never counted twice and the index is committed with its events or not at all.
A batch is folded into one row per distinct entity before it is written: however many events
name a host, the batch writes that host's row once (first and last event time, event count),
and the rows go in sorted by id, so concurrent commits take their row locks in one order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, update

from agentwatch.events.model import Event
from agentwatch.store.entities_schema import VALUE_WIDTH, entities
from agentwatch.store.events import ASCII_FOLD
from agentwatch.store.upsert import upsert

TYPE_WIDTH = entities.c.type.type.length
FORGET_CHUNK = 500  # ids per DELETE .. IN (...)


def fold(batch: list[Event]) -> list[dict[str, Any]]:
    """One row per distinct entity of ``batch``, sorted by id. An entity whose value the index
    cannot hold (not text, or longer than the column) is left out."""
    seen: dict[str, list[Any]] = {}  # id -> [entity, first_seen, last_seen, event_count]
    for e in batch:
        ts = e.ts
        for ent in e.entities:
            acc = seen.get(ent["id"])
            if acc is None:
                seen[ent["id"]] = [ent, ts, ts, 1]
                continue
            acc[3] += 1
            if ts < acc[1]:
                acc[1] = ts
            elif ts > acc[2]:
                acc[2] = ts
    rows = []
    for eid in sorted(seen):
        ent, first, last, count = seen[eid]
        value, kind = ent.get("value"), ent.get("type")
        if not isinstance(value, str) or not value or len(value) > VALUE_WIDTH:
            continue
        if not isinstance(kind, str) or len(kind) > TYPE_WIDTH:
            continue
        rows.append(
            {
                "id": eid,
                "type": kind,
                "value": value,
                "folded": value.translate(ASCII_FOLD),
                "first_seen": first,
                "last_seen": last,
                "event_count": count,
            }
        )
    return rows


def _least(conn: Connection) -> Any:
    return func.min if conn.dialect.name == "sqlite" else func.least


def _greatest(conn: Connection) -> Any:
    return func.max if conn.dialect.name == "sqlite" else func.greatest


def record(conn: Connection, batch: list[Event]) -> None:
    """Add the entities of ``batch`` (events stored for the first time) to the index."""
    rows = fold(batch)
    if not rows:
        return
    least, greatest = _least(conn), _greatest(conn)
    upsert(
        conn,
        entities,
        rows,
        ["id"],
        {
            "first_seen": lambda t, ex: least(t.c.first_seen, ex.first_seen),
            "last_seen": lambda t, ex: greatest(t.c.last_seen, ex.last_seen),
            "event_count": lambda t, ex: t.c.event_count + ex.event_count,
        },
    )


def forget(conn: Connection, entity_id_lists: Iterable[str]) -> None:
    """Take events about to be deleted out of the index, in the deleting transaction:
    ``entity_id_lists`` are their ``entity_ids`` columns. Each entity's count drops by the events
    naming it, and an entity no stored event names any more leaves the index; ``first_seen`` and
    ``last_seen`` stay the bounds of what was seen. Rows are changed in id order, as ``record``
    takes them."""
    named = Counter(eid for ids in entity_id_lists for eid in ids.split())
    if not named:
        return
    ordered = sorted(named)
    lower = update(entities).where(entities.c.id == bindparam("eid"))
    conn.execute(
        lower.values(event_count=entities.c.event_count - bindparam("n")),
        [{"eid": eid, "n": named[eid]} for eid in ordered],
    )
    for i in range(0, len(ordered), FORGET_CHUNK):
        chunk = ordered[i : i + FORGET_CHUNK]
        conn.execute(delete(entities).where(entities.c.id.in_(chunk), entities.c.event_count <= 0))


class EntityIndexStage:
    """Keeps the ``entities`` table (see the module docstring); runs after the entity stage."""

    name = "entity_index"

    def process(self, batch: list[Event]) -> list[Event]:
        return batch

    def in_commit(self, conn: Connection, fresh: list[Event]) -> None:
        record(conn, fresh)
