"""A pass of the SLA watch with nothing to record only reads: on SQLite it does not wait for
the one write lock that ingest holds while it commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agentwatch.soc.sla import evaluate, store
from agentwatch.store.engine import make_engine
from agentwatch.store.migrate import migrate


def test_an_idle_pass_does_not_take_the_sqlite_write_lock(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    store.targets(engine)  # the defaults seeded (a write, once)
    writer = sqlite3.connect(tmp_path / "store.db", timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        assert evaluate.sweep(engine, time.time(), 86_400.0) == 0
    finally:
        writer.rollback()
        writer.close()
        engine.dispose()
