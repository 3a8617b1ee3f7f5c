"""Garbage-collector settings for a long-running server.

Once started, the process holds a large, long-lived heap: modules, the compiled
detection rules (the bundled ATR set alone is hundreds of thousands of objects),
the schema validators, the app. Every event decoded allocates a few short-lived
dicts, and with the default thresholds the collector runs every 700 allocations and
its older generations keep re-walking that heap: measured on the ingest path, about
half of the decode cost. Freezing the heap alive at start-up (and again once the
rules are compiled) takes it out of every later collection, and a larger first
threshold makes young collections rarer. Cycles among new objects are still found.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Exclude every object alive now from future collections (they live as long as the process)."""
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
    gc.freeze()
