"""Prepared statements: the same rows SQLAlchemy gives, on both stores; unplain types refused."""

from __future__ import annotations

import sqlite3

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
    event,
    select,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from agentwatch.store.engine import make_engine
from agentwatch.store.prepared import Prepared, sqlite_chunk_rows

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
with_defaults = Table(
    "prepared_defaults",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("label", String(16), nullable=False, default="none"),
    Column("made", Float, default=lambda: 1.5),
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


def test_inserts_take_scalar_defaults_and_refuse_computed_ones(engine):
    with engine.begin() as conn:
        Prepared(with_defaults.insert(), ["id", "made"]).execute_many(
            conn, [{"id": 1, "made": 2.0}, {"id": 2, "made": 3}]
        )
        Prepared(with_defaults.insert(), ["id", "label", "made"]).execute_many(
            conn, [{"id": 3, "label": "x", "made": 0}]
        )
        got = Prepared(select(with_defaults).order_by(with_defaults.c.id)).rows(conn)
        assert got == [(1, "none", 2.0), (2, "none", 3.0), (3, "x", 0.0)]
        with pytest.raises(TypeError, match="computed default"):
            Prepared(with_defaults.insert(), ["id"]).execute_many(conn, [{"id": 4}])
        with pytest.raises(KeyError):  # a value the statement needs was not given: never a silent NULL
            Prepared(with_defaults.insert(), ["id", "made"]).execute_many(conn, [{"id": 5}])


def test_execute_reports_the_rows_changed(engine):
    change = Prepared(things.update().where(things.c.rank >= bindparam("least")).values(note=bindparam("new_note")))
    with engine.begin() as conn:
        assert change.execute(conn, least=2, new_note="seen") == 2
        assert change.execute(conn, least=99, new_note="none") == 0
        assert sorted(Prepared(select(things.c.id, things.c.note)).rows(conn)) == [
            ("a", "seen"),
            ("b", None),
            ("c", "seen"),
        ]


def test_sqlite_inserts_go_in_multi_row_chunks_under_the_variable_limit(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'chunks.db'}")

    @event.listens_for(engine, "connect")
    def _small_limit(dbapi_conn, _record):  # 20 variables: 3 rows of 6 values per statement
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 20)

    meta.create_all(engine)
    rows = [{"id": f"r{i}", "n": i, "x": i / 2, "note": f"n{i}", "blob": bytes([i]), "rank": i % 4} for i in range(25)]
    try:
        with engine.begin() as conn:
            assert sqlite_chunk_rows(conn.connection.driver_connection, 6) == 3
            Prepared(things.insert(), list(rows[0])).execute_many(conn, rows)
            got = Prepared(select(things).order_by(things.c.n)).mappings(conn)
        assert got == rows
        # an upsert whose rows repeat a key inside one statement adds up, as row-by-row would
        bump = Prepared(
            sqlite_insert(things).on_conflict_do_update(index_elements=["id"], set_={"n": things.c.n + 1}),
            ["id", "n", "x", "note", "blob", "rank"],
        )
        again = [{**rows[0], "n": 0}] * 7
        with engine.begin() as conn:
            bump.execute_many(conn, again)
            assert Prepared(select(things.c.n).where(things.c.id == "r0")).rows(conn) == [(7,)]
    finally:
        engine.dispose()
