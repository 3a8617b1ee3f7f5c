"""Parent links kept a tree: a session never becomes its own ancestor.

The envelope refuses a session naming itself as parent; naming one of its descendants closes
a loop just the same (``a`` child of ``b``, then ``b`` child of ``a``), and a loop has no root:
walked from any of its sessions, ``children`` never ends. Such a link is not taken (the
session keeps no parent; its events are stored as sent), so the link that was there first
stays.

Only a session that already has a child can close a loop, so the check costs one look-up
of children per batch that links sessions to parents, and a walk up the ancestors only for
a session that has children (a parent whose child arrived first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, bindparam, select

from agentwatch.sessions import queries
from agentwatch.sessions.schema import aop_sessions
from agentwatch.store.prepared import Prepared

log = structlog.get_logger("agentwatch.sessions")
CHUNK = 500
MAX_DEPTH = 10_000  # ancestors walked at most (as many as a recursive delete takes)
_HAS_CHILD = Prepared(select(aop_sessions.c.id).where(aop_sessions.c.parent_session_id == bindparam("sid")).limit(1))


def _with_children(conn: Connection, rows: dict[str, dict[str, Any]], ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that some session (stored, or of this batch) names as parent."""
    named = {row["parent_session_id"] for row in rows.values()}
    found = {sid for sid in ids if sid in named}
    rest = [sid for sid in dict.fromkeys(ids) if sid not in found]
    if len(rest) <= 1:
        found.update(sid for sid in rest if _HAS_CHILD.rows(conn, sid=sid))
        return found
    for i in range(0, len(rest), CHUNK):
        chunk = rest[i : i + CHUNK]
        stmt = select(aop_sessions.c.parent_session_id).where(aop_sessions.c.parent_session_id.in_(chunk)).distinct()
        found.update(conn.execute(stmt).scalars())
    return found


def _is_ancestor(conn: Connection, rows: dict[str, dict[str, Any]], session_id: str, parent: str) -> bool:
    """Whether ``session_id`` is ``parent`` or one of its ancestors."""
    seen: set[str] = set()
    current: str | None = parent
    while current is not None and current not in seen and len(seen) < MAX_DEPTH:
        if current == session_id:
            return True
        seen.add(current)
        row = rows.get(current) or queries.get_session(conn, current)
        current = row["parent_session_id"] if row is not None else None
    return False


def cut_loops(conn: Connection, rows: dict[str, dict[str, Any]], linked: Sequence[str]) -> None:
    """Undo the parent links ``linked`` sessions took in this batch (in the order they took
    them) that would make a session its own ancestor; the later link of a loop goes."""
    if not linked:
        return
    with_children = _with_children(conn, rows, linked)
    for sid in reversed(linked):
        parent = rows[sid]["parent_session_id"]
        if sid in with_children and parent is not None and _is_ancestor(conn, rows, sid, parent):
            log.info("sessions.parent_loop_refused", session_id=sid, parent_session_id=parent)
            rows[sid]["parent_session_id"] = None
