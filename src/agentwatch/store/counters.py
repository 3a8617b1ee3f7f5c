"""Running totals (events by type, AI providers, models, tokens) kept per batch."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, Engine, delete, select

from agentwatch.store.schema import counters
from agentwatch.store.upsert import upsert


def add(conn: Connection, tally: Counter[tuple[str, str]]) -> None:
    rows = [{"family": fam, "key": key, "value": float(v)} for (fam, key), v in sorted(tally.items())]
    upsert(conn, counters, rows, ["family", "key"], {"value": lambda t, ex: t.c.value + ex.value})


def take(conn: Connection, tally: Counter[tuple[str, str]]) -> None:
    """Subtract ``tally`` (events deleted); a total that reaches zero is removed, not listed as 0."""
    negative = Counter({k: -v for k, v in tally.items() if v})
    if not negative:
        return
    add(conn, negative)
    for (fam, key), _n in sorted(negative.items()):
        conn.execute(delete(counters).where(counters.c.family == fam, counters.c.key == key, counters.c.value <= 0))


def read(engine: Engine) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with engine.connect() as conn:
        for fam, key, value in conn.execute(select(counters.c.family, counters.c.key, counters.c.value)):
            out.setdefault(fam, {})[key] = value
    return out
