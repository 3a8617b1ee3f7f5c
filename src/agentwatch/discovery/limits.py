"""The scanner's guardrails on the wire: one global budget, per-host budgets, token-bucket rates."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class Limits:
    """Every connection and request of a scan passes through :meth:`slot`."""

    def __init__(self, *, concurrency: int, per_host: int, rate_per_host: float, global_rate: float) -> None:
        self.budget = asyncio.Semaphore(concurrency)
        self.per_host = per_host
        self.rate_per_host = rate_per_host
        self.global_bucket = TokenBucket(global_rate, burst=max(1.0, min(global_rate, concurrency)))
        self._hosts: dict[str, tuple[asyncio.Semaphore, TokenBucket]] = {}
        self.requests = 0

    def _host(self, host: str) -> tuple[asyncio.Semaphore, TokenBucket]:
        entry = self._hosts.get(host)
        if entry is None:
            entry = (asyncio.Semaphore(self.per_host), TokenBucket(self.rate_per_host, burst=max(1.0, self.per_host)))
            self._hosts[host] = entry
        return entry

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        sem, bucket = self._host(host)
        async with sem, self.budget:
            await bucket.take()
            await self.global_bucket.take()
            self.requests += 1
            yield
