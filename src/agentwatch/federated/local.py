"""The local target: the query run directly on agentwatch's own event store (SQLite or
PostgreSQL), through SQLAlchemy with every value a bound parameter.

``contains`` and ``startswith`` compare the lower-cased column with the lower-cased value, LIKE
wildcards in the value escaped (``autoescape``). The native text shown is the statement as the
store's dialect compiles it, values inlined for reading only; the statement run binds them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, and_, func, not_, or_, select

from agentwatch.events.model import iso
from agentwatch.federated.dialect import Window
from agentwatch.federated.language import And, Comparison, Node, Not
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


def condition(node: Node) -> Any:
    if isinstance(node, Comparison):
        col = COLUMNS[node.field]
        v = node.value
        if node.op == "contains":
            return func.lower(col).contains(str(v).lower(), autoescape=True)
        if node.op == "startswith":
            return func.lower(col).startswith(str(v).lower(), autoescape=True)
        if node.op == "in":
            return col.in_(list(node.values))
        return {
            "=": col == v,
            "!=": col != v,
            ">": col > v,
            ">=": col >= v,
            "<": col < v,
            "<=": col <= v,
        }[node.op]
    if isinstance(node, Not):
        return not_(condition(node.part))
    parts = [condition(p) for p in node.parts]
    return and_(*parts) if isinstance(node, And) else or_(*parts)


def statement(node: Node, window: Window, limit: int) -> Any:
    return (
        select(*SHOWN)
        .where(events.c.ts >= window.start, events.c.ts <= window.end, condition(node))
        .order_by(events.c.ts.desc(), events.c.seq.desc())
        .limit(limit)
    )


def render(engine: Engine, node: Node, window: Window, limit: int) -> str:
    """The statement as text for the analyst to read (values inlined; never executed)."""
    stmt = statement(node, window, limit)
    try:
        return str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    except Exception:  # a value the dialect cannot inline: show the parameters' names instead
        return str(stmt.compile(dialect=engine.dialect))


def run(engine: Engine, node: Node, window: Window, limit: int) -> list[dict[str, Any]]:
    with snapshot(engine) as conn:
        rows = conn.execute(statement(node, window, limit)).mappings().all()
    out = []
    for r in rows:
        row = {name: r[col.name] for name, col in COLUMNS.items()}
        row["ts"] = iso(r["ts"])
        out.append(row)
    return out
