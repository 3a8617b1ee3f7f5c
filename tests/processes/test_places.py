"""Places of the live streams (``processes.places``): in memory for one process, file locks for
the processes of one server. Two ``Places`` on one directory stand for two processes (each
takes its locks on descriptors of its own, as processes do); one test takes places from a
real process and kills it."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from agentwatch.processes.places import Places


def test_one_process_counts_its_places_in_memory():
    places = Places("ws_events", 2)
    first, second = places.take(), places.take()
    assert first is not None and second is not None
    assert places.take() is None and places.taken == 2
    first.release()
    first.release()  # given back once, whatever calls it again
    assert places.taken == 1
    assert places.take() is not None and places.take() is None


def test_the_processes_of_one_server_share_the_limit(tmp_path: Path):
    a, b = Places("ws_events", 3, str(tmp_path)), Places("ws_events", 3, str(tmp_path))
    held = [a.take(), a.take(), b.take()]
    assert all(p is not None for p in held)
    assert b.take() is None and a.take() is None  # three in all, whichever process asks
    held[0].release()
    again = b.take()
    assert again is not None
    assert (a.taken, b.taken) == (1, 2)
    # another kind has places of its own
    assert Places("aop_stream", 1, str(tmp_path)).take() is not None


def _hold(directory: str, ready: multiprocessing.synchronize.Event) -> None:
    places = Places("ws_events", 2, directory)
    held = [places.take(), places.take()]
    assert all(p is not None for p in held)
    ready.set()
    time.sleep(120)  # until killed


def test_a_process_that_dies_gives_its_places_back(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(60)
        places = Places("ws_events", 2, str(tmp_path))
        assert places.take() is None
        holder.kill()
        holder.join(30)
        assert places.take() is not None and places.take() is not None
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


@pytest.mark.parametrize("kind", ["../x", "a/b", "", "ws events"])
def test_a_kind_that_is_no_file_name_is_refused(kind: str, tmp_path: Path):
    with pytest.raises(ValueError, match="kind"):
        Places(kind, 1, str(tmp_path))
