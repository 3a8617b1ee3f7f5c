"""Small persisted settings (runtime filters, scanner settings, ...) as JSON values."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, select

from agentwatch.store.schema import kv
from agentwatch.store.upsert import upsert


def get(engine: Engine, key: str, default: Any = None) -> Any:
    with engine.connect() as conn:
        value = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar_one_or_none()
    return default if value is None else orjson.loads(value)


def put(engine: Engine, key: str, value: Any) -> None:
    with engine.begin() as conn:
        upsert(
            conn, kv, [{"key": key, "value": orjson.dumps(value).decode()}], ["key"], {"value": lambda t, ex: ex.value}
        )
