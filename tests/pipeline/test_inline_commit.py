"""Small SQLite batches commit on the event loop's thread; a held lock sends them to a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.store import events as event_store
from tests.pipeline.test_pipeline import make_events

HOLD_S = 2.0  # how long another writer holds SQLite's lock below


class ThreadProbe:
    """A stage that notes the thread each batch runs on."""

    name = "thread_probe"

    def __init__(self) -> None:
        self.threads: list[int] = []

    def process(self, batch):
        self.threads.append(threading.get_ident())
        return batch


@pytest.fixture
def aw(settings: Settings):
    app = Agentwatch(settings)
    yield app
    app.engine.dispose()


async def test_small_batches_run_on_the_loop_thread_on_sqlite_only_and_large_ones_on_a_worker(aw):
    probe = ThreadProbe()
    aw.pipeline.stages.insert(0, probe)
    await aw.pipeline.start()
    small = await aw.pipeline.submit(make_events(aw, 3))
    large = await aw.pipeline.submit(make_events(aw, aw.settings.pipeline.inline_commit_events + 1, 100))
    await aw.pipeline.stop()
    assert (small.stored, large.stored) == (3, 65)
    loop_thread = threading.get_ident()
    on_sqlite = aw.engine.dialect.name == "sqlite"
    assert (probe.threads[0] == loop_thread) is on_sqlite  # PostgreSQL waits on the network: a thread
    assert probe.threads[1] != loop_thread
    assert event_store.count(aw.engine) == 68


async def test_setting_zero_runs_every_batch_on_a_worker(aw):
    aw.settings.pipeline.inline_commit_events = 0
    probe = ThreadProbe()
    aw.pipeline.stages.insert(0, probe)
    await aw.pipeline.start()
    assert (await aw.pipeline.submit(make_events(aw, 1))).stored == 1
    await aw.pipeline.stop()
    assert probe.threads[0] != threading.get_ident()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_writer_holding_the_lock_sends_the_batch_to_a_thread_and_the_loop_stays_free(aw):
    """Another writer holds SQLite's lock for 2 s: the inline commit gives up after its short
    wait, the batch waits on a thread instead, and meanwhile the event loop keeps turning. (A
    loop kept waiting would not even end the sleep before the holder lets go: its longest stall
    would be the whole hold. The bound leaves room for a loaded machine, where a 5 ms sleep was
    seen to take half a second.)"""
    await aw.pipeline.start()
    holder = sqlite3.connect(aw.engine.url.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        tick_task = asyncio.create_task(ticker())
        submitted = asyncio.create_task(aw.pipeline.submit(make_events(aw, 2)))
        await asyncio.sleep(HOLD_S)
        assert not submitted.done()  # still waiting for the lock, on a thread
        holder.execute("COMMIT")
        outcome = await asyncio.wait_for(submitted, 10)
        tick_task.cancel()
    finally:
        holder.close()
    await aw.pipeline.stop()
    assert outcome.stored == 2
    assert aw.metrics.inline_lock_waits._value.get() == 1
    longest_stall = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    assert longest_stall < HOLD_S / 2  # the loop waited the short wait at most, not the hold
    assert event_store.count(aw.engine) == 2
