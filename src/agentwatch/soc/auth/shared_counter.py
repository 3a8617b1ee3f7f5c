"""Request rate-limit counters shared by the processes of one ``serve --processes N``.

Each process counting in its own memory (``limits.MemoryCounter``) would let a client that
the kernel spreads over N processes make N times its budget. The parent therefore makes one
file of fixed size in its private directory and names it in ``AGENTWATCH_SHARED_COUNTERS``;
every process maps it and counts there, so one budget holds for the whole server without
Redis (with ``redis_url`` set the counters are in Redis, and this file is where they fall back
to while Redis cannot be reached).

The file is a table of :data:`SLOTS` slots. A key is kept as a 64-bit BLAKE2b digest and
looked for in the :data:`PROBES` slots from the one its digest names; a slot whose window has
ended is free. When all of them are taken by running windows, the least recently hit one is
given up (counted in ``evicted`` and logged, as the in-memory counters do past their cap): a
forgotten counter starts again from zero. Each operation holds an exclusive ``flock`` of the
file for a few microseconds (the processes each open it, so their locks exclude each other)
and a lock of the process's own for its threads.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from agentwatch.soc.auth.limits import Decision, window_ending_at, window_of

try:
    import fcntl
except ImportError:  # not on POSIX: serve --processes shares one socket there, but no file locks
    fcntl = None  # type: ignore[assignment]

log = structlog.get_logger("agentwatch.auth.limits")

SHARED_COUNTERS_ENV = "AGENTWATCH_SHARED_COUNTERS"
SLOTS = 1 << 17  # 131,072 keys (a 5 MiB file, sparse until used); the in-memory cap is 100,000
PROBES = 8
# digest of the key (0: an empty slot), window index, hits in it, the window's end, last hit
SLOT = struct.Struct("<Qqqdd")
SLOT_BYTES = SLOT.size
FILE_BYTES = SLOTS * SLOT_BYTES


def create_table(path: str) -> None:
    """Make the empty table at ``path`` (the parent, before it starts the processes)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, FILE_BYTES)
    finally:
        os.close(fd)


def digest(key: str) -> int:
    """The key's 64-bit digest, never 0 (the mark of an empty slot)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


class SharedCounter:
    """A :class:`~agentwatch.soc.auth.limits.Counter` in the table at ``path`` (see the module
    docstring); the table must exist (``create_table``) and have its full size."""

    def __init__(self, path: str) -> None:
        if fcntl is None:
            raise RuntimeError("shared rate-limit counters need POSIX file locks")
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        try:
            size = os.fstat(self._fd).st_size
            if size != FILE_BYTES:
                raise ValueError(f"{path}: {size} bytes, not the {FILE_BYTES} of a counter table")
            self._map = mmap.mmap(self._fd, FILE_BYTES)
        except BaseException:
            os.close(self._fd)
            raise
        self._thread_lock = threading.Lock()
        self.evicted = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _find(self, key: int, claim: bool, now: float) -> tuple[int, tuple[int, int, int, float, float] | None]:
        """The offset of ``key``'s slot and what it holds; else, with ``claim``, the offset of
        the slot to give it (and None), or -1 without. A slot whose window ended by ``now`` is free."""
        start = key % SLOTS
        free = oldest = -1
        oldest_hit = float("inf")
        for i in range(PROBES):
            at = ((start + i) % SLOTS) * SLOT_BYTES
            slot = SLOT.unpack_from(self._map, at)
            if slot[0] == key:
                return at, slot
            if free < 0 and (slot[0] == 0 or slot[3] <= now):
                free = at
            elif slot[4] < oldest_hit:
                oldest, oldest_hit = at, slot[4]
        if free >= 0 or not claim:
            return free if claim else -1, None
        self.evicted += 1
        log.warning("limits.counters_evicted", evicted=1, shared=True)
        return oldest, None

    def _count(self, key: str, window_s: int, delta: int) -> tuple[int, float]:
        """Add ``delta`` (0 or 1) to ``key``'s hits in the current window; the hits and its end."""
        now = time.time()
        idx, reset = window_of(window_s, now)
        wanted = digest(key)
        with self._locked():
            at, slot = self._find(wanted, delta > 0, now)
            hits = slot[2] if slot is not None and slot[1] == idx else 0
            if delta:
                hits += delta
                SLOT.pack_into(self._map, at, wanted, idx, hits, reset, now)
        return hits, reset

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        n, reset = self._count(key, window_s, 1)
        return Decision(n <= limit, limit, max(0, limit - n), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        n, reset = self._count(key, window_s, 0)
        return Decision(n < limit, limit, max(0, limit - n), reset)

    async def clear(self, key: str, window_s: int) -> None:
        wanted = digest(key)
        with self._locked():
            at, slot = self._find(wanted, False, time.time())
            if slot is not None:
                SLOT.pack_into(self._map, at, 0, 0, 0, 0.0, 0.0)

    async def release(self, key: str, window_s: int, reset_at: float) -> None:
        wanted = digest(key)
        with self._locked():
            at, slot = self._find(wanted, False, time.time())
            if slot is not None and slot[1] == window_ending_at(window_s, reset_at) and slot[2] > 0:
                SLOT.pack_into(self._map, at, wanted, slot[1], slot[2] - 1, slot[3], slot[4])

    async def close(self) -> None:
        if not self._map.closed:
            self._map.close()
            os.close(self._fd)
