"""Statements compiled once per dialect and run on the database driver's own cursor.

For the hottest statements (a session's detail page and list, the audit append, the
pipeline's upserts) SQLAlchemy's work per execution (the cache key, result metadata adapted
to each execution, a ``Row`` per row, parameter processing per row) cost more than SQLite
took to answer. A :class:`Prepared` statement is still written with SQLAlchemy Core, so it
is the same SQL on SQLite and PostgreSQL; it is compiled the first time each dialect runs
it, and from then on goes straight to the driver with its values. On SQLite, an INSERT for
many rows is sent as multi-row statements (see :func:`sqlite_chunk_rows`).

Bind values get the conversions SQLAlchemy would apply. Result columns must be of plain
types (text, integers, floats, bytes): a statement returning a column that needs a
conversion (a JSON, Numeric or DateTime column, say) is refused when first compiled, so
the shortcut never returns something SQLAlchemy would have converted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, Integer, LargeBinary, String
from sqlalchemy.sql import Executable
from sqlalchemy.sql.crud import REQUIRED


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...]  # bind names, in placeholder order for positional drivers
    positional: bool
    defaults: dict[str, Any]  # values written into the statement itself
    converters: dict[str, Callable[[Any], Any]]  # the bind conversions SQLAlchemy would apply


def _plain(col_type: Any) -> bool:
    """Types both drivers hand back as the Python value SQLAlchemy would give: text,
    integers, floats (not decimals) and bytes."""
    if isinstance(col_type, Float):
        return not col_type.asdecimal
    return isinstance(col_type, String | Integer | LargeBinary)


def _fixed_values(compiled: Any) -> dict[str, Any]:
    """Values the statement carries itself: literals written into it, and the scalar defaults
    of columns an INSERT or UPDATE does not name. A bind with neither must be given by the
    caller (a missing one is a KeyError, never a silent NULL)."""
    fixed = {k: v for k, v in compiled.params.items() if v is not None and v is not REQUIRED}
    for col in [*compiled.insert_prefetch, *compiled.update_prefetch]:
        default = col.default if col in compiled.insert_prefetch else col.onupdate
        if default is None or not default.is_scalar:
            raise TypeError(f"prepared statement: column {col.key!r} has a computed default; give its value")
        fixed[col.key] = default.arg
    return fixed


def sqlite_chunk_rows(raw_conn: Any, values_per_row: int) -> int:
    """Rows per multi-row INSERT on this SQLite connection (its limit on bound variables).

    One statement instead of ``executemany``: the driver lets go of the GIL once for the
    whole statement instead of once per row, and a thread taking the GIL back after each
    row waits out every other busy thread's time slice (5 ms by default), row after row.
    """
    limit = raw_conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(500, limit // max(values_per_row, 1)))


def _row_tuple(c: _Compiled) -> str | None:
    """The ``VALUES (?, ...)`` row of a single-row SQLite INSERT whose only placeholders are
    that row's, else None (the statement is then run per row)."""
    if not c.positional or not c.sql.startswith("INSERT"):
        return None
    row = "(" + ", ".join("?" * len(c.order)) + ")"
    if c.sql.count("?") != len(c.order) or c.sql.count("VALUES " + row) != 1:
        return None
    return row


class Prepared:
    """``column_keys`` names the values an INSERT or UPDATE takes (the keys of each row)."""

    def __init__(self, stmt: Executable, column_keys: Sequence[str] | None = None) -> None:
        self.stmt = stmt
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        key = conn.dialect.name
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.stmt.compile(dialect=conn.dialect, column_keys=self.column_keys)
            for entry in compiled._result_columns:
                if not _plain(entry[3]):
                    raise TypeError(f"prepared statement column {entry[0]!r} is not of a plain type")
            positional = compiled.positiontup is not None
            order = tuple(compiled.positiontup if positional else dict.fromkeys(compiled.bind_names.values()))
            found = self._by_dialect[key] = _Compiled(
                compiled.string, order, positional, _fixed_values(compiled), dict(compiled._bind_processors)
            )
        return found

    def _params(self, c: _Compiled, values: dict[str, Any]) -> Any:
        params = values
        if c.defaults or c.converters:
            params = {**c.defaults, **values}
            for name, convert in c.converters.items():  # what SQLAlchemy does to these binds (float(x), ...)
                if params.get(name) is not None:
                    params[name] = convert(params[name])
        if c.positional:
            return tuple(params[name] for name in c.order)
        return {name: params[name] for name in c.order}

    def rows(self, conn: Connection, **values: Any) -> list[tuple[Any, ...]]:
        """All result rows as tuples, in the statement's column order."""
        c = self._compiled(conn)
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.execute(c.sql, self._params(c, values))
            return cur.fetchall()
        finally:
            cur.close()

    def execute(self, conn: Connection, **values: Any) -> int:
        """Run a statement that returns no rows; the count of rows it changed."""
        c = self._compiled(conn)
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.execute(c.sql, self._params(c, values))
            return cur.rowcount
        finally:
            cur.close()

    def execute_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement for every row, each keyed by ``column_keys``.

        On SQLite an INSERT takes the rows as one multi-row statement per chunk (see
        :func:`sqlite_chunk_rows`); elsewhere the driver's ``executemany`` runs it per row.
        """
        if not rows:
            return
        c = self._compiled(conn)
        raw = conn.connection.driver_connection
        row_sql = _row_tuple(c) if conn.dialect.name == "sqlite" else None
        cur = raw.cursor()
        try:
            if row_sql is None:
                cur.executemany(c.sql, [self._params(c, row) for row in rows])
                return
            per = sqlite_chunk_rows(raw, len(c.order))
            for i in range(0, len(rows), per):
                chunk = rows[i : i + per]
                sql = c.sql.replace(row_sql, ", ".join([row_sql] * len(chunk)), 1) if len(chunk) > 1 else c.sql
                cur.execute(sql, tuple(v for row in chunk for v in self._params(c, row)))
        finally:
            cur.close()

    def mappings(self, conn: Connection, **values: Any) -> list[dict[str, Any]]:
        """All result rows as dicts keyed by column name."""
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows(conn, **values)]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.stmt.selected_columns]  # type: ignore[attr-defined]
