"""A case's comments and timeline as they are read back: the newest in the case's detail, all
of them page by page.

Automatic ``change`` entries have no cap (every change of a case adds one), and a case may
hold 10,000 comments of 10,000 characters: the detail carries only the newest
:data:`DETAIL_ITEMS` of each, with their totals, and the history routes page through the rest.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Table, func, select

from agentwatch.events.model import iso
from agentwatch.soc.cases.schema import case_comments, case_timeline, cases

DETAIL_ITEMS = 200  # of each kind, the newest, in a case's detail

# comments by creation, the timeline by when it happened (an entry may tell of the past)
ORDER: dict[str, tuple[Table, tuple[Any, ...]]] = {
    "comments": (case_comments, (case_comments.c.created_at, case_comments.c.id)),
    "timeline": (case_timeline, (case_timeline.c.ts, case_timeline.c.created_at, case_timeline.c.id)),
}


def comment_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "author": row.author, "body": row.body, "created_at": iso(row.created_at)}


def entry_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": iso(row.ts),
        "kind": row.kind,
        "title": row.title,
        "description": row.description,
        "fields": orjson.loads(row.fields),
        "author": row.author,
        "created_at": iso(row.created_at),
    }


Page = tuple[list[dict[str, Any]], int]  # (items, how many the case holds)
SHAPE = {"comments": comment_json, "timeline": entry_json}


def count(conn: Connection, which: str, case_id: str) -> int:
    """How many ``comments`` or ``timeline`` entries the case holds."""
    table, _order = ORDER[which]
    return int(conn.execute(select(func.count()).select_from(table).where(table.c.case_id == case_id)).scalar_one())


def newest(conn: Connection, which: str, case_id: str) -> Page:
    """The newest :data:`DETAIL_ITEMS` ``comments`` or ``timeline`` entries of a case, oldest
    first, and how many it holds."""
    table, order = ORDER[which]
    rows = conn.execute(
        select(table).where(table.c.case_id == case_id).order_by(*(c.desc() for c in order)).limit(DETAIL_ITEMS)
    ).all()
    return [SHAPE[which](r) for r in reversed(rows)], count(conn, which, case_id)


def page(engine: Engine, which: str, case_id: str, offset: int, limit: int) -> Page | None:
    """One page of a case's ``comments`` or ``timeline``, oldest first, and how many it holds;
    None when there is no such case."""
    table, order = ORDER[which]
    with engine.connect() as conn:
        if conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None:
            return None
        rows = conn.execute(
            select(table).where(table.c.case_id == case_id).order_by(*order).offset(offset).limit(limit)
        ).all()
        return [SHAPE[which](r) for r in rows], count(conn, which, case_id)
