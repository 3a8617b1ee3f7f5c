"""Dialect-neutral "insert or ignore" and "insert or update" for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from agentwatch.store.prepared import Prepared


def dialect_insert(conn: Connection, table: Table):  # type: ignore[no-untyped-def]
    """The INSERT of ``conn``'s dialect, which has ``on_conflict_do_*`` (both stores)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# Statements are built once per (dialect, table, keys, update expressions, row columns),
# compiled once, and run on the driver's cursor (``store.prepared``): building one (column
# proxies for ``excluded``) and SQLAlchemy's work per execution cost more than executing it
# for a small batch. Every row of one call has the same columns. An update expression is
# identified by its code and default arguments, so the lambdas written at one place share
# one statement; closures may read only the dialect.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}
_MAX_STATEMENTS = 256


def _remember(key: tuple[Any, ...], stmt: Any) -> Any:
    if len(_STATEMENTS) >= _MAX_STATEMENTS:
        _STATEMENTS.clear()
    _STATEMENTS[key] = stmt
    return stmt


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    if not rows:
        return
    columns = tuple(rows[0])
    cache_key = ("ignore", conn.dialect.name, table, tuple(keys), columns)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        stmt = _remember(
            cache_key, Prepared(dialect_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys)), columns)
        )
    stmt.execute_many(conn, rows)


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
    columns = tuple(rows[0])
    cache_key = (
        "update",
        conn.dialect.name,
        table,
        tuple(keys),
        tuple((c, fn.__code__, fn.__defaults__) for c, fn in update.items()),
        columns,
    )
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        ins = dialect_insert(conn, table)
        built = ins.on_conflict_do_update(
            index_elements=list(keys), set_={col: fn(table, ins.excluded) for col, fn in update.items()}
        )
        stmt = _remember(cache_key, Prepared(built, columns))
    stmt.execute_many(conn, rows)
