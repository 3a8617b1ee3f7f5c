"""The alerts' dedup-key locks stay within a bounded number of PostgreSQL advisory locks per
transaction, however many keys it locks: the server's lock table is shared by every database
on it (6,400 locks with the default settings), and a session delete with thousands of alerts
used to take one lock per alert and fail with "out of shared memory"."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text

from agentwatch.alerts.dedup_lock import lock_dedup_keys
from agentwatch.store.engine import make_engine
from tests.support.services import database_for


@pytest.mark.postgres
def test_locking_ten_thousand_keys_holds_a_bounded_number_of_advisory_locks(tmp_path):
    for url in database_for("postgresql", tmp_path):
        engine = make_engine(url)
        try:
            keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(10_000)]
            with engine.begin() as conn:
                lock_dedup_keys(conn, keys)
                held = conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
                ).scalar_one()
            assert 0 < held <= 1_000  # a small share of the 6,400 the whole server has
        finally:
            engine.dispose()


@pytest.mark.postgres
def test_two_transactions_locking_the_same_key_take_turns(tmp_path):
    """What the lock is for: a second transaction locking a key the first holds waits for it."""
    for url in database_for("postgresql", tmp_path):
        engine = make_engine(url)
        try:
            key = hashlib.sha256(b"one key").hexdigest()
            with engine.begin() as first:
                lock_dedup_keys(first, [key])
                with engine.begin() as second:
                    second.execute(text("SET LOCAL lock_timeout = '200ms'"))
                    with pytest.raises(Exception, match="lock timeout"):
                        lock_dedup_keys(second, [key])
        finally:
            engine.dispose()
