"""Prepared statements: the same rows SQLAlchemy gives, on both stores; unplain types refused."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    select,
)

from agentwatch.store.engine import make_engine
from agentwatch.store.prepared import Prepared

meta = MetaData()
things = Table(
    "prepared_things",
    meta,
    Column("id", String(16), primary_key=True),
    Column("n", BigInteger),
    Column("x", Float),
    Column("note", Text),
    Column("blob", LargeBinary),
    Column("rank", Integer),
)
odd = Table(
    "prepared_odd",
    meta,
    Column("id", Integer, primary_key=True),
    Column("doc", JSON),
    Column("at", DateTime),
    Column("price", Numeric(10, 2)),
)

ROWS = [
    {"id": "a", "n": 2**40, "x": 0.1, "note": "naïve ☃", "blob": b"\x00\xff", "rank": 3},
    {"id": "b", "n": None, "x": None, "note": None, "blob": None, "rank": 1},
    {"id": "c", "n": -7, "x": 1e300, "note": "", "blob": b"", "rank": 2},
]


@pytest.fixture
def engine(database_url):
    eng = make_engine(database_url)
    meta.create_all(eng)
    with eng.begin() as conn:
        conn.execute(things.insert(), ROWS)
    yield eng
    meta.drop_all(eng)
    eng.dispose()


def test_rows_equal_what_sqlalchemy_returns(engine):
    stmt = select(things).where(things.c.rank >= bindparam("least")).order_by(things.c.rank).limit(bindparam("lim"))
    prepared = Prepared(stmt)
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(stmt, {"least": 1, "lim": 10})]
        assert prepared.rows(conn, least=1, lim=10) == expected  # compiled now
        assert prepared.rows(conn, least=1, lim=10) == expected  # and reused
        assert [r["id"] for r in prepared.mappings(conn, least=2, lim=10)] == ["c", "a"]
        assert prepared.mappings(conn, least=1, lim=1) == [{**ROWS[1]}]
        assert prepared.rows(conn, least=99, lim=10) == []
    assert prepared.columns == ["id", "n", "x", "note", "blob", "rank"]


def test_literal_values_in_the_statement_are_kept(engine):
    prepared = Prepared(select(things.c.id).where(things.c.note == "naïve ☃", things.c.id != bindparam("not_id")))
    with engine.connect() as conn:
        assert prepared.rows(conn, not_id="b") == [("a",)]
        assert prepared.rows(conn, not_id="a") == []


@pytest.mark.parametrize("column", ["doc", "at", "price"])
def test_columns_needing_conversion_are_refused(engine, column):
    prepared = Prepared(select(odd.c[column]).where(odd.c.id == bindparam("id")))
    with engine.connect() as conn, pytest.raises(TypeError, match="not of a plain type"):
        prepared.rows(conn, id=1)


def test_binds_get_the_conversions_sqlalchemy_applies(engine):
    prepared = Prepared(select(things.c.id).where(things.c.x >= bindparam("least", type_=Float)))
    with engine.connect() as conn:
        assert prepared.rows(conn, least=1) == [("c",)]  # an int where a float is compared
        assert sorted(prepared.rows(conn, least=0.05)) == [("a",), ("c",)]
