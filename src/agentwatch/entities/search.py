"""Finding entities in the index: by id, or by free text ranked by how well the value matches.

Ranks, best first: the entity whose id is the text (a UUID), values equal to the text, values
starting with it, values holding it elsewhere; within a rank the entity seen last comes first.
The letters A-Z match in either case, every other character exactly, on both stores. Each rank
is one query bounded by the limit: equality and prefix are ranges of the ``folded`` index; the
substring rank walks the entities by last activity and stops at the limit.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, and_, func, not_, select

from agentwatch.events.model import iso
from agentwatch.store.entities_schema import entities
from agentwatch.store.events import ASCII_FOLD

RANKS = ("id", "exact", "prefix", "substring")
NUL, REPLACEMENT = "\x00", "\ufffd"
_SURROGATES = range(0xD800, 0xE000)
_LAST_CODE_POINT = 0x10FFFF


def as_uuid(text: str) -> str | None:
    """``text`` as a canonical UUID string, or None when it is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def public(row: Any, match: str | None = None) -> dict[str, Any]:
    """An index row as the API shows it."""
    out = {
        "id": row.id,
        "type": row.type,
        "value": row.value,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "event_count": row.event_count,
    }
    if match is not None:
        out["match"] = match
    return out


def get(engine: Engine, entity_id: str) -> dict[str, Any] | None:
    """The entity with this (canonical UUID) id, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(entities).where(entities.c.id == entity_id)).first()
    return public(row) if row is not None else None


def _prefix_condition(folded: str) -> Any:
    """Values starting with ``folded``: the range from it up to the first string after every
    string with that prefix (code point order, which the column compares in)."""
    col = entities.c.folded
    last = ord(folded[-1])
    if last == _LAST_CODE_POINT:
        return and_(col >= folded, func.substr(col, 1, len(folded)) == folded)
    after = last + 1 if last + 1 not in _SURROGATES else _SURROGATES.stop
    return and_(col >= folded, col < folded[:-1] + chr(after))


def _holds(dialect: str, folded: str) -> Any:
    """Values holding ``folded`` anywhere: a search for the text itself, without LIKE (whose
    pattern SQLite ends at a NUL character, and which would need its wildcards escaped)."""
    find = func.instr if dialect == "sqlite" else func.strpos
    return find(entities.c.folded, folded) > 0


def search(engine: Engine, text: str, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` entities matching ``text`` (1-256 characters), best first."""
    folded = text.translate(ASCII_FOLD)
    if engine.dialect.name == "postgresql":  # stored there with NUL as U+FFFD (store.pg_text)
        folded = folded.replace(NUL, REPLACEMENT)
    col = entities.c.folded
    prefix = _prefix_condition(folded)
    ranked: list[tuple[str, Any]] = []
    eid = as_uuid(text)
    if eid is not None:
        ranked.append(("id", entities.c.id == eid))
    ranked += [
        ("exact", col == folded),
        ("prefix", and_(prefix, col != folded)),
        ("substring", and_(_holds(engine.dialect.name, folded), not_(prefix))),
    ]
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for match, cond in ranked:
            if len(found) >= limit:
                break
            stmt = (
                select(entities)
                .where(cond)
                .order_by(entities.c.last_seen.desc(), entities.c.id)
                .limit(limit - len(found) + (1 if eid is not None else 0))
            )
            for row in conn.execute(stmt):
                if row.id not in found and len(found) < limit:
                    found[row.id] = public(row, match)
    return list(found.values())
