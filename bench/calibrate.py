"""How fast this machine runs Python right now, printed beside every benchmark table.

The shared machines the benchmarks run on differ in speed by a factor of three or more,
from one machine of the same kind to the next and within a day (the same commit measured
25,600 and 7,400 batched events/s two hours apart, on two such machines). A table's absolute numbers are only comparable with another table's when the
machine was equally fast: each table states the time of one fixed piece of pure-Python
work (summing a million integers, best of five), taken just before the run.
"""

from __future__ import annotations

import timeit


def python_ms() -> float:
    """Milliseconds for ``sum(range(1_000_000))`` on this interpreter, best of five."""
    return min(timeit.repeat("sum(range(1_000_000))", number=1, repeat=5)) * 1000


def label() -> str:
    return f"sum(range(10**6)) {python_ms():.1f} ms"
