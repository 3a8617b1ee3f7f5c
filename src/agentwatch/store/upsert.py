"""Dialect-neutral "insert or ignore" and "insert or update" for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    if not rows:
        return
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(stmt, list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: dict[str, Any],
) -> None:
    """Insert rows; on a key conflict apply ``update`` (expressions may use ``excluded``).

    ``update`` maps a column to a callable ``(table, excluded) -> expression``.
    """
    if not rows:
        return
    ins = _insert(conn, table)
    stmt = ins.on_conflict_do_update(
        index_elements=list(keys), set_={col: fn(table, ins.excluded) for col, fn in update.items()}
    )
    conn.execute(stmt, list(rows))
