"""Fixed-window counters for request rate limits and login throttling.

In-process by default (in a table the processes of one ``serve --processes N`` share, see
``soc.auth.shared_counter``); in Redis when ``redis_url`` is set, so several server processes
and nodes share one budget (``INCR`` + expiry in one Lua call, keys named after the window).
If Redis cannot be reached the counters fall back to the in-process ones rather than
refusing every request, and the fallback is logged.

The in-process counters are keyed by client address, account or credential, so their number
is the client's choice (an IPv6 /64 holds more addresses than memory): at most
``MAX_MEMORY_KEYS`` are kept. Past that, counters whose window has ended go first, then the
least recently hit ones (down to 90 % of the cap, so making room is rare), which are counted
in ``evicted`` and logged: a forgotten counter starts again from zero.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger("agentwatch.auth.limits")

MAX_MEMORY_KEYS = 100_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window ends

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(math.ceil(self.reset_at)).encode()),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(self.retry_after()).encode()))
        return out

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


def window_of(window_s: int, now: float) -> tuple[int, float]:
    idx = int(now // window_s)
    return idx, (idx + 1) * window_s


def window_ending_at(window_s: int, reset_at: float) -> int:
    """The window that ends at ``reset_at``."""
    return round(reset_at / window_s) - 1


class Counter(Protocol):
    async def hit(self, key: str, limit: int, window_s: int) -> Decision: ...
    async def peek(self, key: str, limit: int, window_s: int) -> Decision: ...
    async def clear(self, key: str, window_s: int) -> None: ...
    async def release(self, key: str, window_s: int, reset_at: float) -> None:
        """Take back one hit of the window ending at ``reset_at`` (an attempt that did not count)."""
        ...

    async def close(self) -> None: ...


class MemoryCounter:
    """Counters of this process only, at most ``max_keys`` of them (see the module docstring)."""

    def __init__(self, max_keys: int = MAX_MEMORY_KEYS) -> None:
        self.max_keys = max_keys
        # key -> (window index, hits, window end), least recently hit first
        self._counts: OrderedDict[str, tuple[int, int, float]] = OrderedDict()
        self.evicted = 0  # counters dropped while their window was still running

    def _get(self, key: str, idx: int) -> int:
        got = self._counts.get(key)
        return got[1] if got is not None and got[0] == idx else 0

    def _prune(self, now: float) -> None:
        """Make room: drop the counters of ended windows (whatever their length), then the least
        recently hit down to 90 % of the cap; a full sweep is then at most once per tenth of the cap."""
        live = OrderedDict((k, v) for k, v in self._counts.items() if v[2] > now)
        keep = self.max_keys * 9 // 10
        evicted = 0
        while len(live) > keep:
            live.popitem(last=False)
            evicted += 1
        self._counts = live
        if evicted:
            self.evicted += evicted
            log.warning("limits.counters_evicted", evicted=evicted, cap=self.max_keys)

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = time.time()
        idx, reset = window_of(window_s, now)
        n = self._get(key, idx) + 1
        self._counts[key] = (idx, n, reset)
        self._counts.move_to_end(key)
        if len(self._counts) > self.max_keys:
            self._prune(now)
        return Decision(n <= limit, limit, max(0, limit - n), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        idx, reset = window_of(window_s, time.time())
        n = self._get(key, idx)
        return Decision(n < limit, limit, max(0, limit - n), reset)

    async def clear(self, key: str, window_s: int) -> None:
        self._counts.pop(key, None)

    async def release(self, key: str, window_s: int, reset_at: float) -> None:
        got = self._counts.get(key)
        if got is not None and got[0] == window_ending_at(window_s, reset_at) and got[1] > 0:
            self._counts[key] = (got[0], got[1] - 1, got[2])

    async def close(self) -> None:
        return None


_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# Only an existing counter is decremented: one that expired is not brought back below zero.
_RELEASE = """
local n = tonumber(redis.call('GET', KEYS[1]))
if n and n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCounter:
    """Counters shared by every process using the same Redis and prefix."""

    def __init__(self, url: str, prefix: str, fallback: Counter | None = None) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._hit = self._redis.register_script(_HIT)
        self._release = self._redis.register_script(_RELEASE)
        self.prefix = prefix
        self.fallback: Counter = fallback or MemoryCounter()
        self._warned_at = 0.0

    def _key(self, key: str, idx: int) -> str:
        return f"{self.prefix}rl:{key}:{idx}"

    def _degraded(self, exc: Exception) -> None:
        if time.monotonic() - self._warned_at > 60:
            self._warned_at = time.monotonic()
            log.warning("limits.redis_unavailable", error_type=type(exc).__name__)

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        idx, reset = window_of(window_s, time.time())
        try:
            n = int(await self._hit(keys=[self._key(key, idx)], args=[int(window_s * 1000) + 1000]))
        except Exception as exc:  # Redis down: keep limiting in-process
            self._degraded(exc)
            return await self.fallback.hit(key, limit, window_s)
        return Decision(n <= limit, limit, max(0, limit - n), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        idx, reset = window_of(window_s, time.time())
        try:
            n = int(await self._redis.get(self._key(key, idx)) or 0)
        except Exception as exc:
            self._degraded(exc)
            return await self.fallback.peek(key, limit, window_s)
        return Decision(n < limit, limit, max(0, limit - n), reset)

    async def clear(self, key: str, window_s: int) -> None:
        idx, _ = window_of(window_s, time.time())
        try:
            await self._redis.delete(self._key(key, idx))
        except Exception as exc:
            self._degraded(exc)
            await self.fallback.clear(key, window_s)

    async def release(self, key: str, window_s: int, reset_at: float) -> None:
        try:
            await self._release(keys=[self._key(key, window_ending_at(window_s, reset_at))])
        except Exception as exc:
            self._degraded(exc)
            await self.fallback.release(key, window_s, reset_at)

    async def close(self) -> None:
        await self._redis.aclose()
        await self.fallback.close()
