"""The local target: the query run directly on agentwatch's own event store (SQLite or
PostgreSQL), through SQLAlchemy with every value a bound parameter.

``contains`` and ``startswith`` compare the lower-cased column with the lower-cased value, LIKE
wildcards in the value escaped (``autoescape``). SQLite's own ``lower`` folds ASCII letters only,
so there the column is lower-cased by Python's (:data:`SQLITE_LOWER`, registered on the
connection), as PostgreSQL's and the other targets' do every letter. The native text shown is the
statement as the store's dialect compiles it, values inlined for reading only; the statement run
binds them.

A query runs until its target's deadline and no longer, inside the store too: a timed-out
target must not leave a statement running in a worker thread (PostgreSQL: ``statement_timeout``
for the transaction; SQLite: a progress handler that interrupts the statement).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import BigInteger, Engine, String, and_, func, literal, not_, or_, select
from sqlalchemy.exc import DBAPIError

from agentwatch.events.model import iso
from agentwatch.federated.dialect import Window
from agentwatch.federated.language import And, Comparison, Node, Not
from agentwatch.store.engine import is_sqlite
from agentwatch.store.schema import events
from agentwatch.store.snapshot import snapshot

COLUMNS = {
    "event_id": events.c.event_id,
    "event_type": events.c.event_type,
    "source": events.c.source_format,
    "severity": events.c.severity,
    "session_id": events.c.session_id,
    "agent": events.c.agent,
    "host": events.c.host,
    "process": events.c.process_name,
    "pid": events.c.pid,
    "trace_id": events.c.trace_id,
}
SHOWN = (events.c.ts, *COLUMNS.values())
SQLITE_LOWER = "aw_lower"
PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between two looks at the deadline


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _lowered(col: Any, sqlite: bool) -> Any:
    return func.aw_lower(col, type_=String) if sqlite else func.lower(col)


def _bound(value: Any) -> Any:
    """A number is bound as a 64-bit integer: bound with a 32-bit column's own type (severity),
    PostgreSQL refuses a value past that type's range instead of comparing it."""
    return literal(value, BigInteger) if isinstance(value, int) else value


def _compare(node: Comparison, sqlite: bool) -> Any:
    col = COLUMNS[node.field]
    v = node.value
    if node.op == "contains":
        return _lowered(col, sqlite).contains(str(v).lower(), autoescape=True)
    if node.op == "startswith":
        return _lowered(col, sqlite).startswith(str(v).lower(), autoescape=True)
    if node.op == "in":
        return col.in_([_bound(x) for x in node.values])
    b = _bound(v)
    return {
        "=": col == b,
        "!=": col != b,
        ">": col > b,
        ">=": col >= b,
        "<": col < b,
        "<=": col <= b,
    }[node.op]


def condition(node: Node, sqlite: bool = False, negated: bool = False) -> Any:
    """The filter with NOT pushed down to the comparisons: a comparison on a NULL column is
    false (SQL's unknown is dropped by WHERE) and its negation is true, written
    ``col IS NULL OR NOT (...)``, as every dialect does (:meth:`agentwatch.federated.dialect.Dialect.condition`)."""
    if isinstance(node, Comparison):
        if negated:
            return or_(COLUMNS[node.field].is_(None), not_(_compare(node, sqlite)))
        return _compare(node, sqlite)
    if isinstance(node, Not):
        return condition(node.part, sqlite, not negated)
    parts = [condition(p, sqlite, negated) for p in node.parts]
    return and_(*parts) if isinstance(node, And) != negated else or_(*parts)  # De Morgan under NOT


def statement(node: Node, window: Window, limit: int, sqlite: bool = False) -> Any:
    return (
        select(*SHOWN)
        .where(events.c.ts >= window.start, events.c.ts <= window.end, condition(node, sqlite))
        .order_by(events.c.ts.desc(), events.c.seq.desc())
        .limit(limit)
    )


def render(engine: Engine, node: Node, window: Window, limit: int) -> str:
    """The statement as text for the analyst to read (values inlined; never executed)."""
    stmt = statement(node, window, limit, is_sqlite(engine))
    try:
        return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    except Exception:  # a value the dialect cannot inline: show the parameters' names instead
        return str(stmt.compile(dialect=engine.dialect))


def run(engine: Engine, node: Node, window: Window, limit: int, deadline: float | None = None) -> list[dict[str, Any]]:
    """The rows of the query; past ``deadline`` (``time.monotonic()``) the store stops the
    statement and this raises :class:`TimeoutError`."""
    sqlite = is_sqlite(engine)
    try:
        with snapshot(engine) as conn:
            raw = conn.connection.driver_connection
            if sqlite:
                assert isinstance(raw, sqlite3.Connection)  # noqa: S101 (the SQLite driver's connection)
                raw.create_function(SQLITE_LOWER, 1, _lower, deterministic=True)
                if deadline is not None:
                    raw.set_progress_handler(lambda: int(time.monotonic() >= deadline), PROGRESS_STEPS)
            elif deadline is not None:
                ms = max(1, int((deadline - time.monotonic()) * 1000))
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")  # an int: nothing to quote
            try:
                rows = conn.execute(statement(node, window, limit, sqlite)).mappings().all()
            finally:
                if sqlite and deadline is not None:
                    raw.set_progress_handler(None, PROGRESS_STEPS)  # the connection goes back to the pool
    except DBAPIError:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError from None
        raise
    out = []
    for r in rows:
        row = {name: r[col.name] for name, col in COLUMNS.items()}
        row["ts"] = iso(r["ts"])
        out.append(row)
    return out
