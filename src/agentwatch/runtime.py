"""Garbage-collector and thread-switching settings for a long-running server.

Once started, the process holds a large, long-lived heap: modules, the compiled
detection rules (the bundled ATR set alone is hundreds of thousands of objects),
the schema validators, the app. Every event decoded allocates a few short-lived
dicts, and with the default thresholds the collector runs every 700 allocations and
its older generations keep re-walking that heap: measured on the ingest path, about
half of the decode cost. Freezing the heap alive at start-up (and again once the
rules are compiled) takes it out of every later collection, and a larger first
threshold makes young collections rarer. Cycles among new objects are still found.
When the server stops, the frozen heap is handed back to the collector: a process that
starts servers one after another (the test suite, an embedding program) would otherwise
keep, for good, every reference cycle that happened to be alive at a later start. A stopped
server is itself such cycles (some 16 MB with its rule matchers and pools), and the collector
rarely gets to them before the next start freezes the heap again: test workers still grew to
gigabytes. So a start that follows a few stops collects before it freezes: a full collection
takes a quarter of a second with the test suite's heap, and after every stop it made a
server-heavy test module a sixth slower; after every fourth, a few stopped servers at most
wait for it.

The server's threads take turns on the interpreter lock: the event loop, the pipeline's
commit thread, the decoding threads. Each SQLite call lets go of the lock and must take it
back from whichever thread is running Python; with the default 5 ms switch interval that
thread keeps it up to 5 ms each time. A 1 ms interval hands the lock over sooner: batched
ingest measured 34,000 -> 37,000 events/s (bench/ingest, back to back), single requests
unchanged.
"""

from __future__ import annotations

import gc
import sys
import threading

YOUNG_THRESHOLD = 10_000
SWITCH_INTERVAL_S = 0.001


STOPS_PER_COLLECTION = 4  # servers stopped (their cycles garbage) before a start collects them

_lock = threading.Lock()
_stops = 0  # servers stopped since the last collection


def settle_heap() -> None:
    """Exclude every object alive now from future collections (they live as long as the process);
    first collect what the servers stopped since the last collection left, once they are
    ``STOPS_PER_COLLECTION`` (unless the program turned automatic collection off)."""
    global _stops
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
    with _lock:
        due = _stops >= STOPS_PER_COLLECTION and gc.isenabled()
        if due:
            _stops = 0
    if due:
        gc.collect()
    gc.freeze()


def release_heap() -> None:
    """Hand the heap frozen by :func:`settle_heap` back to the collector (the server stopped)."""
    global _stops
    gc.unfreeze()
    with _lock:
        _stops += 1


def share_interpreter() -> None:
    """Hand the interpreter lock between threads every millisecond instead of every five."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
