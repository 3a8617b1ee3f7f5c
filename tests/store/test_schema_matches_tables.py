"""The tables the migrations build are the tables the code declares, on both stores.

The code reads and writes through the SQLAlchemy ``Table`` definitions; the database gets
its tables from the Alembic revisions of many branches. A column, index or constraint added
to one side only would pass every test that happens not to touch it and fail in production
(a missing index shows only as a slow query). Alembic's comparison of a migrated database
with the declared metadata names any such difference.
"""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Index, Table

from agentwatch.extensions import load_registry
from agentwatch.store.migrate import migrate
from agentwatch.store.schema import ONE_STORE_ONLY, metadata

pytestmark = pytest.mark.blank_database


def differences_from_declared(conn) -> list:
    """Alembic's comparison, leaving out what is declared for the other store only (Alembic
    does not read ``ddl_if``)."""

    def here(obj, name, type_, reflected, compare_to) -> bool:
        return ONE_STORE_ONLY.get(name, conn.dialect.name) == conn.dialect.name

    return compare_metadata(MigrationContext.configure(conn, opts={"include_object": here}), metadata)


def test_a_migrated_database_has_exactly_the_declared_tables_columns_and_indexes(engine):
    load_registry()  # every capability's tables are declared by importing it
    migrate(engine)
    with engine.connect() as conn:
        differences = differences_from_declared(conn)
    assert differences == []


def test_the_comparison_sees_an_index_declared_but_never_migrated(engine):
    load_registry()
    migrate(engine)
    extra = Table("events", metadata, extend_existing=True)
    index = Index("ix_events_only_declared", extra.c.agent)
    try:
        with engine.connect() as conn:
            differences = differences_from_declared(conn)
    finally:
        extra.indexes.discard(index)
    assert [d[0] for d in differences] == ["add_index"]
    assert differences[0][1].name == "ix_events_only_declared"
