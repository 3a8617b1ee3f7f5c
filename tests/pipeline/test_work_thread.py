"""Decoding large bodies and processing the batches share one work thread per process."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import orjson
import pytest

from agentwatch.api.ingest import INLINE_DECODE_BYTES, decode_with
from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.pipeline.work_thread import THREAD_NAME, WorkThread
from tests.pipeline.test_inline_commit import ThreadProbe
from tests.pipeline.test_pipeline import make_events

REQUEST = contextvars.ContextVar("request", default="none")


async def test_jobs_run_one_at_a_time_on_one_thread_in_the_order_handed_in():
    work = WorkThread()
    spans: list[tuple[str, float, float, str]] = []

    def job(name: str, seconds: float) -> str:
        began = time.monotonic()
        time.sleep(seconds)
        spans.append((name, began, time.monotonic(), threading.current_thread().name))
        return name

    try:
        done = await asyncio.gather(work.run(job, "first", 0.2), work.run(job, "second", 0.0))
    finally:
        work.close()
    assert done == ["first", "second"]
    (first, _, first_end, thread_a), (second, second_began, _, thread_b) = spans
    assert (first, second) == ("first", "second")
    assert second_began >= first_end  # the second waited for the first, though it was shorter
    assert thread_a == thread_b and thread_a.startswith(THREAD_NAME)


async def test_a_job_sees_the_context_variables_of_whoever_handed_it_in():
    work = WorkThread()
    REQUEST.set("req-42")
    try:
        assert await work.run(REQUEST.get) == "req-42"
    finally:
        work.close()


async def test_jobs_handed_in_after_close_still_run_on_a_pool_thread():
    work = WorkThread()
    work.close()
    name = await work.run(lambda: threading.current_thread().name)
    assert not name.startswith(THREAD_NAME)


class RecordingCodec:
    """The OISP codec, noting the thread each decode runs on."""

    def __init__(self, codec) -> None:
        self.codec = codec
        self.threads: list[tuple[str, int]] = []

    def decode(self, body: bytes, content_type: str):
        self.threads.append((threading.current_thread().name, threading.get_ident()))
        return self.codec.decode(body, content_type)


@pytest.fixture
def aw(settings: Settings):
    app = Agentwatch(settings)
    yield app
    app.engine.dispose()


def ndjson(count: int, pad: int) -> bytes:
    return b"\n".join(
        orjson.dumps(
            {
                "event_type": "process.exec",
                "process": {"pid": i, "name": "p"},
                "data": {"exe": "/bin/p", "args": ["x" * pad]},
            }
        )
        for i in range(count)
    )


async def test_a_large_body_is_decoded_on_the_thread_that_processes_the_batches(aw):
    probe = ThreadProbe()
    aw.pipeline.stages.insert(0, probe)
    codec = RecordingCodec(aw.oisp)
    await aw.pipeline.start()
    try:
        body = ndjson(100, 1000)
        assert len(body) > INLINE_DECODE_BYTES
        decoded = await decode_with(aw, codec.decode, body, "application/x-ndjson")
        outcome = await aw.pipeline.submit(decoded.events)
        small = await decode_with(aw, codec.decode, ndjson(1, 10), "application/x-ndjson")
    finally:
        await aw.pipeline.stop()
    assert (len(decoded.events), outcome.stored, len(small.events)) == (100, 100, 1)
    (large_name, large_ident), (_, small_ident) = codec.threads
    assert large_name.startswith(THREAD_NAME)
    assert small_ident == threading.get_ident()  # a small body stays on the event loop
    # 100 events are more than an inline commit takes: the batch ran on the work thread too
    assert probe.threads == [large_ident]


class SlowStage:
    """A stage that takes ``seconds`` over each batch."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def process(self, batch):
        time.sleep(self.seconds)
        return batch


class DoneProbe:
    """A detector noting when each batch was through the commit (detectors run after it)."""

    name = "done_probe"

    def __init__(self) -> None:
        self.done: list[float] = []

    def detect(self, batch):
        self.done.append(time.monotonic())
        return []


async def test_the_server_stops_only_after_the_batch_left_on_the_work_thread_is_through(settings: Settings):
    """The pipeline gives up waiting after its drain timeout, but the batch goes on running on
    the work thread: the server waits for it before it disposes of the store."""
    settings.pipeline.shutdown_drain_s = 0.2
    app = Agentwatch(settings)
    probe = DoneProbe()
    app.pipeline.stages.insert(0, SlowStage(1.5))
    app.pipeline.detectors.append(probe)
    await app.start()
    events = make_events(app, settings.pipeline.inline_commit_events + 1)
    submitted = asyncio.create_task(app.pipeline.submit(events))
    try:
        await asyncio.sleep(0.3)  # the worker has taken the batch: the stage is sleeping
        await app.stop()
        stopped = time.monotonic()
    finally:
        submitted.cancel()
        app.engine.dispose()
    assert len(probe.done) == 1 and probe.done[0] <= stopped
