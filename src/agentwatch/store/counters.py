"""Running totals (events by type, AI providers, models, tokens) kept per batch.

A total is a row ``(family, key, value)``. The keys of three families (event types, provider
names, model ids) come from event payloads, so there are as many rows as distinct strings
clients send. Reads are therefore bounded: a family answers with its ``TOP_N`` largest totals,
found by walking the index ``ix_counters_top`` (family, value descending, key) from its start,
so the cost does not grow with the number of keys. What the keys left out add up to is known
from one more row per family, ``(SUM_FAMILY, family)``, which every write keeps equal to the
sum of the family's totals; it is written with the batch (one row per family in the batch),
so ingest does no extra work per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, or_, select

from agentwatch.store.schema import counters
from agentwatch.store.upsert import upsert

TOP_N = 100  # the totals a family answers with; the rest are given as one sum
SUM_FAMILY = "sum"  # key: a family's name; value: the sum of all that family's totals


@dataclass(frozen=True)
class Family:
    """A family's largest totals, and what all its other totals add up to."""

    top: dict[str, float]
    rest: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.top.values()) + self.rest


@dataclass(frozen=True)
class Totals:
    """What one read saw: the families asked for, and the totals asked for by key."""

    families: dict[str, Family]
    exact: dict[tuple[str, str], float]

    def family(self, name: str) -> Family:
        return self.families.get(name, Family({}))

    def value(self, family: str, key: str) -> float:
        return self.exact.get((family, key), 0.0)


def _with_sums(tally: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """The tally plus, for each family it touches, the change to that family's sum row."""
    out = Counter(tally)
    for (fam, _key), v in tally.items():
        out[(SUM_FAMILY, fam)] += v
    return out


def _apply(conn: Connection, changes: Counter[tuple[str, str]]) -> None:
    # sorted, so concurrent writers take the rows' locks in one order
    rows = [{"family": fam, "key": key, "value": float(v)} for (fam, key), v in sorted(changes.items())]
    upsert(conn, counters, rows, ["family", "key"], {"value": lambda t, ex: t.c.value + ex.value})


def add(conn: Connection, tally: Counter[tuple[str, str]]) -> None:
    _apply(conn, _with_sums(tally))


def take(conn: Connection, tally: Counter[tuple[str, str]]) -> None:
    """Subtract ``tally`` (events deleted); a total that reaches zero is removed, not listed as 0."""
    negative = _with_sums(Counter({k: -v for k, v in tally.items() if v}))
    if not negative:
        return
    _apply(conn, negative)
    for (fam, key), _n in sorted(negative.items()):
        conn.execute(delete(counters).where(counters.c.family == fam, counters.c.key == key, counters.c.value <= 0))


def _top(conn: Connection, family: str) -> dict[str, float]:
    stmt = (
        select(counters.c.key, counters.c.value)
        .where(counters.c.family == family)
        .order_by(counters.c.value.desc(), counters.c.key)
        .limit(TOP_N)
    )
    return {key: value for key, value in conn.execute(stmt)}


def _exact(conn: Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    if not pairs:
        return {}
    cond = or_(*(and_(counters.c.family == fam, counters.c.key == key) for fam, key in pairs))
    found = conn.execute(select(counters.c.family, counters.c.key, counters.c.value).where(cond))
    return {(fam, key): value for fam, key, value in found}


def _family(conn: Connection, family: str, sums: dict[tuple[str, str], float]) -> Family:
    top = _top(conn, family)
    # max: a sum that fell behind its family's rows must not show a negative rest
    rest = max(0.0, sums.get((SUM_FAMILY, family), 0.0) - sum(top.values()))
    return Family(top, rest)


def read(engine: Engine, families: Iterable[str] = (), exact: Iterable[tuple[str, str]] = ()) -> Totals:
    """Each of ``families`` as its ``TOP_N`` largest totals and the sum of the rest, and the
    totals named in ``exact`` whatever their rank (a figure that must not depend on how many
    other keys clients made up, such as the number of ``ai.request`` events)."""
    names = list(dict.fromkeys(families))
    with engine.connect() as conn:
        sums = _exact(conn, [(SUM_FAMILY, name) for name in names])
        found = {name: _family(conn, name, sums) for name in names}
        return Totals(found, _exact(conn, list(dict.fromkeys(exact))))
