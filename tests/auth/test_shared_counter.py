"""The request rate-limit table shared by the processes of ``serve --processes N``.

Two counters opened on one table stand for two processes (each opens the file itself, so
their locks exclude each other as processes' do); one test counts from real processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from agentwatch.soc.auth import shared_counter
from agentwatch.soc.auth.shared_counter import PROBES, SLOTS, SharedCounter, create_table, digest
from tests.support.windows import wait_out_window_edge


@pytest.fixture
def table(tmp_path: Path) -> str:
    path = str(tmp_path / "counters")
    create_table(path)
    return path


async def test_two_openers_share_one_budget(table: str):
    a, b = SharedCounter(table), SharedCounter(table)
    wait_out_window_edge(3600)
    allowed = [(await (a if i % 2 else b).hit("addr:10.0.0.1", 5, 3600)).allowed for i in range(8)]
    assert allowed == [True] * 5 + [False] * 3
    decision = await b.peek("addr:10.0.0.1", 5, 3600)
    assert (decision.allowed, decision.remaining) == (False, 0)
    # another key has a budget of its own
    assert (await a.hit("addr:10.0.0.2", 5, 3600)).remaining == 4
    await a.close()
    await b.close()


async def test_release_and_clear_are_seen_by_the_other_opener(table: str):
    a, b = SharedCounter(table), SharedCounter(table)
    wait_out_window_edge(3600)
    first = await a.hit("user:7", 3, 3600)
    await a.hit("user:7", 3, 3600)
    await b.release("user:7", 3600, first.reset_at)
    assert (await a.peek("user:7", 3, 3600)).remaining == 2  # one of the two hits given back
    await b.clear("user:7", 3600)
    assert (await a.peek("user:7", 3, 3600)).remaining == 3
    # releasing a key never hit, or once more than it was hit, writes nothing
    await b.release("user:8", 3600, first.reset_at)
    await b.release("user:7", 3600, first.reset_at)
    assert (await a.peek("user:8", 3, 3600)).remaining == 3
    assert (await a.peek("user:7", 3, 3600)).remaining == 3
    await a.close()
    await b.close()


async def test_a_new_window_starts_from_zero(table: str):
    counter = SharedCounter(table)
    start = time.time()
    while int(time.time()) == int(start):  # a whole second of the one-second window left
        await asyncio.sleep(0.01)
    assert [(await counter.hit("k", 2, 1)).allowed for _ in range(3)] == [True, True, False]
    await asyncio.sleep(1.05)
    assert (await counter.hit("k", 2, 1)).remaining == 1
    await counter.close()


def _keys_of_one_probe_run(n: int) -> list[str]:
    """``n`` keys whose digests all name slots inside one run of ``PROBES`` slots."""
    found: list[str] = []
    i = 0
    while len(found) < n:
        key = f"addr:192.0.2.{i}"
        if digest(key) % SLOTS < PROBES // 2:  # any slot of 0..3: each probes past slot 3
            found.append(key)
        i += 1
    return found


async def test_a_full_run_of_slots_gives_up_the_least_recently_hit_key(table: str):
    counter = SharedCounter(table)
    wait_out_window_edge(3600)
    keys = _keys_of_one_probe_run(PROBES + 1)
    for key in keys[:PROBES]:
        await counter.hit(key, 10, 3600)
        await counter.hit(key, 10, 3600)
    assert counter.evicted == 0
    await counter.hit(keys[0], 10, 3600)  # keys[1] is now the least recently hit
    assert (await counter.hit(keys[PROBES], 10, 3600)).remaining == 9
    assert counter.evicted == 1
    assert (await counter.peek(keys[1], 10, 3600)).remaining == 10  # forgotten: starts again
    assert (await counter.peek(keys[0], 10, 3600)).remaining == 7  # kept with its three hits
    await counter.close()


async def test_an_ended_window_frees_its_slot(table: str, monkeypatch: pytest.MonkeyPatch):
    counter = SharedCounter(table)
    keys = _keys_of_one_probe_run(PROBES + 1)
    for key in keys[:PROBES]:
        await counter.hit(key, 10, 1)
    later = time.time() + 5  # every one-second window above has ended
    monkeypatch.setattr(shared_counter.time, "time", lambda: later)
    await counter.hit(keys[PROBES], 10, 3600)
    assert counter.evicted == 0
    await counter.close()


def _hit_many(path: str, times: int, ready: multiprocessing.synchronize.Barrier) -> None:
    async def run() -> None:
        counter = SharedCounter(path)
        ready.wait()
        for _ in range(times):
            await counter.hit("addr:shared", 1_000_000, 3600)
        await counter.close()

    asyncio.run(run())


def test_processes_hitting_at_once_lose_no_hit(table: str):
    wait_out_window_edge(3600, margin=60)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(3)
    workers = [ctx.Process(target=_hit_many, args=(table, 2000, ready)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    counter = SharedCounter(table)
    assert asyncio.run(counter.peek("addr:shared", 1_000_000, 3600)).remaining == 1_000_000 - 6000
    asyncio.run(counter.close())


def test_a_file_of_another_size_is_refused(tmp_path: Path):
    path = tmp_path / "counters"
    path.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not the .* of a counter table"):
        SharedCounter(str(path))


def test_the_table_is_made_once(table: str):
    with pytest.raises(FileExistsError):
        create_table(table)
    assert Path(table).stat().st_mode & 0o777 == 0o600
