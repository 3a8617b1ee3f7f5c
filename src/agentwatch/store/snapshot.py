"""Reads that must agree with each other: one read transaction over one snapshot of the store.

A list answers with a page and the count of every row that matches, read by two statements.
Each statement on its own sees the store as it is when it starts, so a row committed between
them is counted but not listed, and ``total`` (with the ``next_offset`` derived from it)
disagrees with the page. Read in one :func:`snapshot`, both see the store as of the first.

- SQLite (WAL): a read transaction sees the database as it was at its first read until it
  ends. The driver begins no transaction before a SELECT (each one is its own), so one is
  begun here with a plain ``BEGIN``: deferred, it takes no lock, and in WAL mode writers go
  on committing while it reads.
- PostgreSQL: READ COMMITTED, the default, takes a new snapshot for every statement;
  ``REPEATABLE READ`` keeps the first statement's for the whole transaction, and ``READ
  ONLY`` says it writes nothing (it never fails a serialization check). The pool puts the
  connection's own level back when it is returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from agentwatch.store.engine import is_sqlite


@contextmanager
def snapshot(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection whose reads until the block ends all see one snapshot of the store.

    Given a connection, that connection is used as it is: the caller's transaction decides
    what it sees (several reads of one request share it)."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as conn:
        if is_sqlite(bind):
            with conn.begin():
                conn.exec_driver_sql("BEGIN")
                yield conn
            return
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn
