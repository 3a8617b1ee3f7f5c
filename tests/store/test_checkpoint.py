"""WAL checkpoints on a background thread: commits stop paying for them, the log stays bounded."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, select

from agentwatch.store.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from agentwatch.store.engine import checkpointer_for, make_engine

meta = MetaData()
rows = Table("checkpoint_rows", meta, Column("id", Integer, primary_key=True), Column("body", Text))


def log_pages(wal: Path) -> int:
    """Frames in a WAL file: a 32-byte header, then 24 bytes of frame header per 4 KiB page."""
    return (wal.stat().st_size - 32) // (24 + 4096)


def write(engine, start: int, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(rows.insert(), [{"id": i, "body": "x" * 500} for i in range(start, start + n)])


def test_engine_connections_leave_checkpoints_to_the_thread(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == BACKSTOP_PAGES
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert checkpointer_for(engine).path == str(tmp_path / "a.db")
        assert checkpointer_for(create_engine("sqlite://")) is None  # in memory: nothing to checkpoint
    finally:
        engine.dispose()


def test_the_thread_copies_the_log_back_and_stop_truncates_it(tmp_path: Path):
    path = tmp_path / "b.db"
    engine = make_engine(f"sqlite:///{path}")
    meta.create_all(engine)
    wal = Path(f"{path}-wal")
    for b in range(20):
        write(engine, b * 100, 100)
    pages = log_pages(wal)
    # Without the thread nothing was copied back (the log is below the backstop): the rows
    # are in the log only, and the database file is as small as it was.
    assert pages > 100 and path.stat().st_size < 100_000

    ckpt = WalCheckpointer(str(path), interval_s=0.05)
    ckpt.start()
    try:
        deadline = time.monotonic() + 10
        while ckpt.stats.pages < pages:
            assert time.monotonic() < deadline, ckpt.stats
            time.sleep(0.02)
        write(engine, 10_000, 100)  # writers go on while it runs
    finally:
        ckpt.stop()
    try:
        assert ckpt.stats.failures == 0
        assert path.stat().st_size > 1_000_000  # 2,100 rows of 500 bytes now in the database file
        # truncated on stop although the engine's connections are still open
        assert wal.stat().st_size == 0
    finally:
        engine.dispose()
    check = make_engine(f"sqlite:///{path}")
    try:
        with check.connect() as conn:
            assert len(conn.execute(select(rows.c.id)).all()) == 2100
    finally:
        check.dispose()


def test_a_failing_checkpoint_is_counted_never_raised(tmp_path: Path):
    ckpt = WalCheckpointer(str(tmp_path / "missing-dir" / "c.db"), interval_s=0.01)
    ckpt.start()
    deadline = time.monotonic() + 5
    while ckpt.stats.failures < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ckpt.stop()
    assert ckpt.stats.runs == 0 and ckpt.stats.failures >= 3
