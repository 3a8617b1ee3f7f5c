"""WAL checkpoints for the SQLite store, off the commit path.

In WAL mode SQLite copies the log back into the database file ("checkpoint") from
inside whichever commit crosses ``wal_autocheckpoint`` pages. That copy was about a
third of the store's cost per event, paid by the pipeline's commit while the
client waited. Here a background thread with its own connection runs passive
checkpoints on a timer (SQLite does the copy without holding the GIL, so it runs
beside the event loop on another core), and the engine's connections keep only a
high ``wal_autocheckpoint`` as a backstop, so a checkpointer that falls behind
never lets the log grow without bound. On stop the log is checkpointed and
truncated, so a stopped store is one file again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import structlog

from agentwatch.store.periodic import Periodic

log = structlog.get_logger("agentwatch.store")

# Pages (of 4 KiB) after which a committing connection checkpoints by itself: about
# 64 MiB, far above what the background thread leaves behind in one interval.
BACKSTOP_PAGES = 16384


@dataclass
class CheckpointStats:
    runs: int = 0
    pages: int = 0  # log pages copied back into the database file
    busy: int = 0  # checkpoints that could not finish (a reader held an old snapshot)
    failures: int = 0


class WalCheckpointer(Periodic):
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``interval_s`` on its own connection."""

    thread_name = "agentwatch-wal-checkpoint"

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        super().__init__(interval_s)
        self.path = path
        self.stats = CheckpointStats()

    def stop(self) -> bool:
        """End the thread, then checkpoint everything and truncate the log."""
        if not super().stop():
            return False
        # Waits at most a second for readers still open elsewhere; the log is then left for
        # SQLite's own checkpoint when the last connection closes.
        self._checkpoint("TRUNCATE", busy_timeout_s=1.0)
        return True

    def tick(self) -> None:
        self._checkpoint("PASSIVE")

    def _checkpoint(self, mode: str, busy_timeout_s: float = 5.0) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
            try:
                busy, log_pages, copied = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            self.stats.failures += 1
            log.warning("store.checkpoint_failed", mode=mode, error=str(exc))
            return
        self.stats.runs += 1
        self.stats.pages += max(copied, 0)
        if busy or (log_pages >= 0 and copied < log_pages):
            self.stats.busy += 1
