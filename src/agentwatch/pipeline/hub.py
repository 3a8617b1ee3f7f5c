"""The live hub: fan-out of committed events and alerts to WebSocket/SSE clients.

Each subscriber has its own bounded buffer; when it is full the oldest frame is
dropped and counted, so a slow client can never grow the server's memory.
Every published item carries a monotonically increasing ``seq`` so SSE clients
can resume with ``Last-Event-ID`` from the store.

When the server runs as several processes (``processes``), each has its own hub;
``mirror`` (set by :mod:`agentwatch.processes.link` while another process has
clients) sees every item published here, and ``on_subscribers`` hears the local
subscriber count change. Items that came from another process are published with
``mirror=False``, so they are not sent back, and ``sibling=True``: ``on_publish`` counts
each item once, in the process that published it first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Predicate = Callable[[str, Any], bool]


@dataclass(eq=False)
class Subscription:
    channels: frozenset[str]
    maxlen: int
    predicate: Predicate | None = None
    dropped: int = 0
    delivered: int = 0
    buffer: deque[tuple[int, str, Any]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def offer(self, seq: int, channel: str, item: Any) -> bool:
        """Queue an item; returns False when an old one had to be dropped."""
        if channel not in self.channels:
            return True
        if self.predicate is not None and not self.predicate(channel, item):
            return True
        lost = False
        if len(self.buffer) >= self.maxlen:
            self.buffer.popleft()
            self.dropped += 1
            lost = True
        self.buffer.append((seq, channel, item))
        self._wake.set()
        return not lost

    async def next_batch(self, timeout: float | None = None, limit: int = 500) -> list[tuple[int, str, Any]]:
        if not self.buffer:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        out = []
        while self.buffer and len(out) < limit:
            out.append(self.buffer.popleft())
        self.delivered += len(out)
        return out

    def close(self) -> None:
        self.closed = True
        self._wake.set()


class LiveHub:
    def __init__(
        self,
        *,
        client_buffer: int = 1000,
        on_drop: Callable[[int], None] | None = None,
        on_publish: Callable[[int], None] | None = None,
    ) -> None:
        self.client_buffer = client_buffer
        self._subs: set[Subscription] = set()
        self._seq = itertools.count(1)
        self._on_drop = on_drop
        self._on_publish = on_publish
        self.mirror: Callable[[str, Any], None] | None = None
        self.on_subscribers: Callable[[int], None] | None = None

    def subscribe(
        self, channels: set[str] | frozenset[str], predicate: Predicate | None = None, maxlen: int | None = None
    ) -> Subscription:
        sub = Subscription(frozenset(channels), maxlen or self.client_buffer, predicate)
        self._subs.add(sub)
        self._tell_subscribers()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subs:
            self._subs.discard(sub)
            self._tell_subscribers()

    def _tell_subscribers(self) -> None:
        if self.on_subscribers is not None:
            self.on_subscribers(len(self._subs))

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def count(self, channel: str) -> int:
        return sum(1 for s in self._subs if channel in s.channels)

    def publish(self, channel: str, item: Any, *, mirror: bool = True, sibling: bool = False) -> int:
        if not sibling and self._on_publish is not None:
            self._on_publish(1)
        return self._send(channel, item, mirror)

    def publish_all(self, channel: str, items: list[Any]) -> None:
        """Publish each of ``items`` (this process's own), counted once for all: ``on_publish``
        may cost a microsecond (a shared metrics file), and a batch holds thousands of events."""
        for item in items:
            self._send(channel, item, True)
        if items and self._on_publish is not None:
            self._on_publish(len(items))

    def _send(self, channel: str, item: Any, mirror: bool) -> int:
        seq = next(self._seq)
        if mirror and self.mirror is not None:
            self.mirror(channel, item)
        if self._subs:
            for sub in list(self._subs):
                if not sub.offer(seq, channel, item) and self._on_drop is not None:
                    self._on_drop(1)
        return seq
