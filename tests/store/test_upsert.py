"""Reused upsert statements: one per (dialect, table, keys, update expressions), never a stale one."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, select

from agentwatch.store.engine import make_engine
from agentwatch.store.upsert import insert_ignore, upsert

meta = MetaData()
items = Table("upsert_items", meta, Column("k", String(16), primary_key=True), Column("v", Integer))


def setter(column: str, value: int):  # the same code with a different default each call
    return {column: lambda _t, _ex, _v=value: _v}


def test_same_code_with_other_defaults_is_another_statement(database_url):
    engine = make_engine(database_url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            insert_ignore(conn, items, [{"k": "a", "v": 1}], ["k"])
            insert_ignore(conn, items, [{"k": "a", "v": 99}], ["k"])  # ignored: key exists
            upsert(conn, items, [{"k": "a", "v": 0}], ["k"], setter("v", 5))
        with engine.begin() as conn:
            assert conn.execute(select(items.c.v).where(items.c.k == "a")).scalar_one() == 5
            upsert(conn, items, [{"k": "a", "v": 0}], ["k"], setter("v", 7))
            assert conn.execute(select(items.c.v).where(items.c.k == "a")).scalar_one() == 7
            upsert(conn, items, [{"k": "a", "v": 3}], ["k"], {"v": lambda t, ex: t.c.v + ex.v})
            upsert(conn, items, [{"k": "a", "v": 3}], ["k"], {"v": lambda t, ex: t.c.v + ex.v})
            assert conn.execute(select(items.c.v).where(items.c.k == "a")).scalar_one() == 13
    finally:
        meta.drop_all(engine)
        engine.dispose()
