"""Small persisted settings (runtime filters, scanner settings, ...) as JSON values.

The table has no expiry of its own: a caller keeping values that go stale (cached LLM
explanations) removes them with :func:`purge`, which decides by the value itself.
"""

from __future__ import annotations

from collections.abc import Callable
from threading import Event
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, select

from agentwatch.store.schema import kv
from agentwatch.store.upsert import upsert

PURGE_PAGE = 200


def get(engine: Engine, key: str, default: Any = None) -> Any:
    with engine.connect() as conn:
        value = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar_one_or_none()
    return default if value is None else orjson.loads(value)


def put(engine: Engine, key: str, value: Any) -> None:
    with engine.begin() as conn:
        put_in(conn, key, value)


def put_in(conn: Connection, key: str, value: Any) -> None:
    """:func:`put` in the caller's transaction (written with what it depends on, or not at all)."""
    upsert(conn, kv, [{"key": key, "value": orjson.dumps(value).decode()}], ["key"], {"value": lambda t, ex: ex.value})


def purge(engine: Engine, prefix: str, doomed: Callable[[Any], bool], stopping: Event | None = None) -> int:
    """Delete the values under keys starting with ``prefix`` for which ``doomed(value)`` is true;
    how many were deleted. A row is deleted only if it still holds the value judged, so one
    rewritten meanwhile (a new explanation) stays. Read a page at a time, in key order; once
    ``stopping`` is set it returns before the next page (what it deleted so far stays deleted)."""
    deleted, after = 0, ""
    while stopping is None or not stopping.is_set():
        with engine.connect() as conn:
            page = conn.execute(
                select(kv.c.key, kv.c.value)
                .where(kv.c.key.startswith(prefix, autoescape=True), kv.c.key > after)
                .order_by(kv.c.key)
                .limit(PURGE_PAGE)
            ).all()
        gone = []
        for key, raw in page:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = None
            if doomed(value):
                gone.append((key, raw))
        if gone:
            with engine.begin() as conn:
                for key, raw in gone:
                    deleted += conn.execute(delete(kv).where(kv.c.key == key, kv.c.value == raw)).rowcount
        if len(page) < PURGE_PAGE:
            return deleted
        after = page[-1][0]
    return deleted


def delete_value(engine: Engine, key: str, value: Any) -> bool:
    """Delete ``key`` if it still holds ``value`` (as :func:`get` read it); whether it did."""
    with engine.begin() as conn:
        raw = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar_one_or_none()
        if raw is None or orjson.loads(raw) != value:
            return False
        return conn.execute(delete(kv).where(kv.c.key == key, kv.c.value == raw)).rowcount > 0
