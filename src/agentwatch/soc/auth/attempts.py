"""Failed sign-in attempts counted in the store, so one budget holds for the whole deployment.

The request rate limits count in the server's own memory (``limits.MemoryCounter``, or the table
the processes of one ``serve --processes N`` map, ``shared_counter``) unless Redis is set: a
request costs no write. Sign-in budgets must neither multiply over nodes nor be forgotten:
with four nodes on one PostgreSQL each would allow its own ``auth.login.per_account``
failures, and a restart would forget them. Sign-ins are few and each
already costs an argon2 hash (tenths of a second), so these budgets live in the
``auth_attempts`` table: a hit is one upsert that counts and reads back in one statement,
atomic on both stores whichever process makes it. Rows of ended windows are deleted by the
process that meets them, at most once a minute. They stay in the store when ``redis_url`` is
set: the store is there whenever a sign-in can be checked at all, where Redis may not be (its
counters fall back to the server's own), and the budgets need no second service.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from sqlalchemy import Engine, case, delete, select, update

from agentwatch.soc.auth.limits import Decision, window_ending_at, window_of
from agentwatch.soc.auth_schema import attempts
from agentwatch.store.upsert import dialect_insert

MAX_KEY = 128  # the column's width; a longer key (an odd client address) is kept as its digest
PRUNE_EVERY_S = 60.0


def stored_key(key: str) -> str:
    return key if len(key) <= MAX_KEY else "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class StoreCounter:
    """The :class:`~agentwatch.soc.auth.limits.Counter` of sign-in budgets, in the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pruned = 0.0

    def _hit(self, key: str, idx: int, reset: float, now: float) -> int:
        with self.engine.begin() as conn:
            if now - self._pruned >= PRUNE_EVERY_S:
                self._pruned = now
                conn.execute(delete(attempts).where(attempts.c.reset_at <= now))
            stmt = (
                dialect_insert(conn, attempts)
                .values(key=key, window_index=idx, hits=1, reset_at=reset)
                .on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "hits": case((attempts.c.window_index == idx, attempts.c.hits + 1), else_=1),
                        "window_index": idx,
                        "reset_at": reset,
                    },
                )
                .returning(attempts.c.hits)
            )
            return int(conn.execute(stmt).scalar_one())

    async def hit(self, key: str, limit: int, window_s: int) -> Decision:
        now = time.time()
        idx, reset = window_of(window_s, now)
        n = await asyncio.to_thread(self._hit, stored_key(key), idx, reset, now)
        return Decision(n <= limit, limit, max(0, limit - n), reset)

    def _hits(self, key: str, idx: int) -> int:
        with self.engine.connect() as conn:
            got = conn.execute(
                select(attempts.c.hits).where(attempts.c.key == key, attempts.c.window_index == idx)
            ).scalar()
        return int(got or 0)

    async def peek(self, key: str, limit: int, window_s: int) -> Decision:
        idx, reset = window_of(window_s, time.time())
        n = await asyncio.to_thread(self._hits, stored_key(key), idx)
        return Decision(n < limit, limit, max(0, limit - n), reset)

    def _write(self, stmt) -> None:  # type: ignore[no-untyped-def]
        with self.engine.begin() as conn:
            conn.execute(stmt)

    async def clear(self, key: str, window_s: int) -> None:
        await asyncio.to_thread(self._write, delete(attempts).where(attempts.c.key == stored_key(key)))

    async def release(self, key: str, window_s: int, reset_at: float) -> None:
        stmt = (
            update(attempts)
            .where(
                attempts.c.key == stored_key(key),
                attempts.c.window_index == window_ending_at(window_s, reset_at),
                attempts.c.hits > 0,
            )
            .values(hits=attempts.c.hits - 1)
        )
        await asyncio.to_thread(self._write, stmt)

    async def close(self) -> None:
        return None
