"""How fast this machine runs Python right now, printed beside every benchmark table.

The shared machines the benchmarks run on differ in speed by a factor of three or more,
from one machine of the same kind to the next and within a day (the same commit measured
25,600 and 7,400 batched events/s two hours apart, on two such machines). A table's
absolute numbers are only comparable with another table's when the machine was equally
fast, so each table states two fixed pieces of work timed just before the run (best of
three):

- a loop of ten million additions: the interpreter alone (the earlier tables of
  BENCHMARKS.md quote it);
- a round trip of 200,000 small objects through the standard library's JSON: allocation
  and memory. It can move when the loop does not: on 2026-12-05 the loop took its usual
  0.6 s while the round trip took 1.6 s and every ingest figure was a third of the day's
  earlier ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

LOOP = 10_000_000
OBJECTS = 200_000


def _best(work: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _loop() -> int:
    x = 0
    for i in range(LOOP):
        x += i
    return x


def _round_trip() -> object:
    docs = [{"id": f"e{i}", "type": "process.exec", "pid": i, "args": ["python3", "agent.py"]} for i in range(OBJECTS)]
    return json.loads(json.dumps(docs))


def label() -> str:
    return f"ten million additions {_best(_loop):.2f} s, JSON round trip {_best(_round_trip):.2f} s"
