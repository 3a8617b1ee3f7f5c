"""Statements compiled once per dialect and run on the database driver's own cursor.

For the hottest reads (a session's detail page, the session list) SQLAlchemy's work per
execution (the cache key, result metadata adapted to each execution, a ``Row`` per row)
cost more than SQLite took to answer. A :class:`Prepared` statement is still written with
SQLAlchemy Core, so it is the same SQL on SQLite and PostgreSQL; it is compiled the first
time each dialect runs it, and from then on goes straight to the driver with its values.

Bind values get the conversions SQLAlchemy would apply. Result columns must be of plain
types (text, integers, floats, bytes): a statement returning a column that needs a
conversion (a JSON, Numeric or DateTime column, say) is refused when first compiled, so
the shortcut never returns something SQLAlchemy would have converted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Float, Integer, LargeBinary, String
from sqlalchemy.sql import Executable


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # bind names in placeholder order (positional drivers)
    defaults: dict[str, Any]  # values written into the statement itself
    converters: dict[str, Callable[[Any], Any]]  # the bind conversions SQLAlchemy would apply


def _plain(col_type: Any) -> bool:
    """Types both drivers hand back as the Python value SQLAlchemy would give: text,
    integers, floats (not decimals) and bytes."""
    if isinstance(col_type, Float):
        return not col_type.asdecimal
    return isinstance(col_type, String | Integer | LargeBinary)


class Prepared:
    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, conn: Connection) -> _Compiled:
        key = conn.dialect.name
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.stmt.compile(dialect=conn.dialect)
            for entry in compiled._result_columns:
                if not _plain(entry[3]):
                    raise TypeError(f"prepared statement column {entry[0]!r} is not of a plain type")
            order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
            found = self._by_dialect[key] = _Compiled(
                compiled.string, order, dict(compiled.params), dict(compiled._bind_processors)
            )
        return found

    def rows(self, conn: Connection, **values: Any) -> list[tuple[Any, ...]]:
        """All result rows as tuples, in the statement's column order."""
        c = self._compiled(conn)
        params = {**c.defaults, **values} if c.defaults else values
        for name, convert in c.converters.items():  # what SQLAlchemy does to these binds (float(x), ...)
            if params.get(name) is not None:
                params[name] = convert(params[name])
        cur = conn.connection.driver_connection.cursor()
        try:
            cur.execute(c.sql, tuple(params[name] for name in c.order) if c.order is not None else params)
            return cur.fetchall()
        finally:
            cur.close()

    def mappings(self, conn: Connection, **values: Any) -> list[dict[str, Any]]:
        """All result rows as dicts keyed by column name."""
        names = self.columns
        return [dict(zip(names, row, strict=True)) for row in self.rows(conn, **values)]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.stmt.selected_columns]  # type: ignore[attr-defined]
