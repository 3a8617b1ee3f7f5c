"""How fast this machine runs Python right now, printed beside every benchmark table.

The shared machines the benchmarks run on differ in speed by a factor of three or more,
from one machine of the same kind to the next and within a day (the same commit measured
25,600 and 7,400 batched events/s two hours apart, on two such machines). A table's
absolute numbers are only comparable with another table's when the machine was equally
fast: each table states the time of one fixed piece of interpreted work, a loop of ten
million additions (best of three), taken just before the run. The earlier tables of
BENCHMARKS.md quote the same loop.
"""

from __future__ import annotations

import time

LOOP = 10_000_000


def loop_seconds(rounds: int = 3) -> float:
    """Seconds for ``for i in range(10**7): x += i``, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        x = 0
        for i in range(LOOP):
            x += i
        best = min(best, time.perf_counter() - started)
    return best


def label() -> str:
    return f"ten million additions {loop_seconds():.2f} s"
