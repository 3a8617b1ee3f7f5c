"""Group commit that waits for the requests already on their way.

A group commit (the pipeline's, the request audit's) takes whatever is queued when it
starts. Under load, the clients answered by one commit send their next requests together,
and the event loop is still decoding most of them when the first one reaches the queue:
that one alone then gets a commit of its own, which costs as much as a full one, and the
rest wait behind it. Measured with 50 clients posting single AOP events, half the commits
held one event and took as long as those holding the other 49.

:func:`let_arrive` yields to the event loop, for as long as each turn of the loop adds
to the queue (at most ``rounds`` turns), before the batch is taken. An idle server pays
one turn of the loop; a busy one commits larger, fewer batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

ROUNDS = 8


async def let_arrive(queued: Callable[[], int], rounds: int = ROUNDS) -> None:
    """Return once a turn of the event loop queues nothing new, or after ``rounds`` turns."""
    for _ in range(rounds):
        before = queued()
        await asyncio.sleep(0)
        if queued() == before:
            return
