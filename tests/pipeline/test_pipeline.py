"""The pipeline against a real store: group commit, overflow policies, drain, persist-before-publish."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.events.normalize import normalize
from agentwatch.pipeline.pipeline import QueueFull, ShuttingDown
from agentwatch.store import events as event_store


def make_events(aw: Agentwatch, n: int, start: int = 0):
    return [
        normalize(
            {"event_type": "process.exec", "process": {"pid": start + i, "name": "p"}, "data": {"exe": "/bin/p"}},
            type_validator=aw.type_validator,
        )
        for i in range(n)
    ]


@pytest.fixture
def aw(settings: Settings):
    app = Agentwatch(settings)
    yield app
    app.engine.dispose()


class SlowStage:
    """A stage that holds the worker until released, to fill the queue deterministically.

    It blocks the thread it runs on: the pipeline using it must run every batch on its worker
    thread (``inline_commit_events = 0``), never on the event loop's."""

    name = "slow"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def process(self, batch):
        self.gate.wait(10)
        return batch


async def test_concurrent_submissions_are_group_committed(aw):
    await aw.pipeline.start()
    outcomes = await asyncio.gather(*(aw.pipeline.submit(make_events(aw, 10, i * 10)) for i in range(20)))
    await aw.pipeline.stop()
    assert sum(o.stored for o in outcomes) == 200
    assert event_store.count(aw.engine) == 200
    batches = aw.metrics.batch_size.collect()[0].samples
    count = next(s.value for s in batches if s.name.endswith("_count"))
    assert count < 20  # several submissions shared a commit


def _batches_committed(aw: Agentwatch) -> float:
    samples = aw.metrics.batch_size.collect()[0].samples
    return next(s.value for s in samples if s.name.endswith("_count"))


async def test_submissions_on_their_way_join_the_commit_of_the_first(aw):
    """Clients whose requests the event loop is still decoding when the first reaches the
    queue share its commit instead of waiting for one of their own."""
    await aw.pipeline.start()

    async def late(turns: int, start: int):
        for _ in range(turns):  # a request still being read and decoded
            await asyncio.sleep(0)
        return await aw.pipeline.submit(make_events(aw, 1, start))

    outcomes = await asyncio.gather(*(late(i, i) for i in range(6)))
    await aw.pipeline.stop()
    assert [o.stored for o in outcomes] == [1] * 6
    assert _batches_committed(aw) == 1


async def test_reject_policy_refuses_past_the_queue_and_counts_drops(aw):
    aw.settings.pipeline.queue_size = 10
    slow = SlowStage()
    aw.settings.pipeline.inline_commit_events = 0
    aw.pipeline.stages.insert(0, slow)
    await aw.pipeline.start()
    first = asyncio.create_task(aw.pipeline.submit(make_events(aw, 8)))
    await asyncio.sleep(0.05)
    with pytest.raises(QueueFull):
        await aw.pipeline.submit(make_events(aw, 5, 100))
    dropped = aw.metrics.dropped.labels("queue_full")._value.get()
    assert dropped == 5
    slow.gate.set()
    assert (await first).stored == 8
    await aw.pipeline.stop()
    assert event_store.count(aw.engine) == 8


async def test_block_policy_waits_for_room(aw):
    aw.settings.pipeline.queue_size = 10
    aw.settings.pipeline.overflow = "block"
    slow = SlowStage()
    aw.settings.pipeline.inline_commit_events = 0
    aw.pipeline.stages.insert(0, slow)
    await aw.pipeline.start()
    first = asyncio.create_task(aw.pipeline.submit(make_events(aw, 8)))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(aw.pipeline.submit(make_events(aw, 5, 100)))
    await asyncio.sleep(0.05)
    assert not second.done()
    slow.gate.set()
    assert (await first).stored == 8 and (await second).stored == 5
    await aw.pipeline.stop()
    assert event_store.count(aw.engine) == 13


async def test_shutdown_drains_everything_accepted_then_refuses(aw):
    aw.settings.pipeline.batch_size = 5
    await aw.pipeline.start()
    tasks = [asyncio.create_task(aw.pipeline.submit(make_events(aw, 5, i * 5))) for i in range(10)]
    await asyncio.sleep(0)  # all ten submissions are queued
    await aw.pipeline.stop()
    results = [await t for t in tasks]
    assert sum(r.stored for r in results) == 50
    assert event_store.count(aw.engine) == 50
    with pytest.raises(ShuttingDown):
        await aw.pipeline.submit(make_events(aw, 1, 999))


async def test_events_are_stored_before_they_are_published(aw):
    seen_in_store = []
    sub = aw.hub.subscribe({"event"})
    await aw.pipeline.start()
    await aw.pipeline.submit(make_events(aw, 3))
    for _seq, _channel, event in await sub.next_batch(timeout=1):
        seen_in_store.append(event_store.get(aw.engine, event.event_id) is not None)
    await aw.pipeline.stop()
    assert seen_in_store == [True, True, True]


async def test_duplicates_in_one_batch_and_across_batches_store_once(aw):
    await aw.pipeline.start()
    evs = make_events(aw, 2)
    twin = make_events(aw, 1)[0]
    twin.event_id = evs[0].event_id
    twin.body["event_id"] = evs[0].event_id
    out = await aw.pipeline.submit([*evs, twin])
    again = await aw.pipeline.submit(make_events(aw, 0) + [evs[1]])
    await aw.pipeline.stop()
    assert (out.stored, out.duplicates) == (2, 1)
    assert (again.stored, again.duplicates) == (0, 1)
    assert event_store.count(aw.engine) == 2


class Recorder:
    """A detector that remembers which events it was shown."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def detect(self, batch):
        self.seen.extend(e.event_id for e in batch)
        return []


async def test_detectors_see_each_event_once_even_when_resent(aw):
    recorder = Recorder()
    aw.pipeline.detectors = [recorder]
    await aw.pipeline.start()
    first = make_events(aw, 3)
    await aw.pipeline.submit(first)
    resent = make_events(aw, 3)
    for e, old in zip(resent, first, strict=True):
        e.event_id = old.event_id
    outcome = await aw.pipeline.submit(resent + make_events(aw, 1, start=100))
    await aw.pipeline.stop()
    assert outcome.stored == 1 and outcome.duplicates == 3
    assert len(recorder.seen) == 4 and len(set(recorder.seen)) == 4


def test_commit_steps_write_in_the_events_transaction(aw):
    calls: list[str] = []

    def step(conn, fresh):
        calls.append(f"step:{len(fresh)}")
        return lambda: calls.append("after commit")

    def failing(conn, fresh):
        raise RuntimeError("the store refused")

    events = make_events(aw, 2)
    assert event_store.commit_batch(aw.engine, events, [step]) == events
    assert calls == ["step:2", "after commit"]
    assert event_store.commit_batch(aw.engine, events, [step]) == []  # nothing new: no step, no write
    assert calls == ["step:2", "after commit"]
    more = make_events(aw, 2, start=50)
    with pytest.raises(RuntimeError):
        event_store.commit_batch(aw.engine, more, [step, failing])
    assert calls == ["step:2", "after commit", "step:2"]  # the after-commit action did not run
    assert event_store.count(aw.engine) == 2  # and the events rolled back with the step


async def _held_pipeline(aw: Agentwatch):
    """A started pipeline whose worker is held in a first commit, so the next submissions
    share one; returns (the gate to release it, the first submission's task)."""
    slow = SlowStage()
    aw.settings.pipeline.inline_commit_events = 0
    aw.pipeline.stages.insert(0, slow)
    await aw.pipeline.start()
    first = asyncio.create_task(aw.pipeline.submit(make_events(aw, 1, 9000)))
    await asyncio.sleep(0.05)
    return slow.gate, first


def _unstorable(aw: Agentwatch):
    bad = make_events(aw, 1, 5000)[0]
    bad.body["attrs"] = {"x": {1, 2}}  # a set: the store cannot serialise it
    bad.body_json = None  # the body changed after intake, so its serialised form is gone
    return bad


async def test_a_submission_the_store_refuses_does_not_fail_the_others(aw):
    gate, first = await _held_pipeline(aw)
    bad = _unstorable(aw)
    good = [asyncio.create_task(aw.pipeline.submit(make_events(aw, 5, 100 * i))) for i in range(1, 4)]
    refused = asyncio.create_task(aw.pipeline.submit([bad]))
    await asyncio.sleep(0.05)
    gate.set()
    assert (await first).stored == 1
    assert [(await t).stored for t in good] == [5, 5, 5]
    with pytest.raises(TypeError):
        await refused
    await aw.pipeline.stop()
    assert event_store.count(aw.engine) == 16
    assert aw.metrics.dropped.labels("commit_failed")._value.get() == 1


async def test_audit_rows_commit_with_their_events_or_not_at_all(aw):
    """A request's audit row handed to the pipeline is stored in its events' transaction: a
    commit the store refuses leaves no row claiming success (the middleware records the failure)."""
    from agentwatch.soc.audit import AuditEntry, AuditTicket

    def ticket(name: str) -> AuditTicket:
        async def entry(status: int) -> AuditEntry:
            return AuditEntry(f"POST /{name}", status=status)

        return AuditTicket(entry)

    gate, first = await _held_pipeline(aw)
    bad = _unstorable(aw)
    tickets = {name: ticket(name) for name in ("good-1", "good-2", "refused")}
    good = [asyncio.create_task(aw.pipeline.submit(make_events(aw, 2, 100 * i), tickets[f"good-{i}"])) for i in (1, 2)]
    refused = asyncio.create_task(aw.pipeline.submit([bad], tickets["refused"]))
    await asyncio.sleep(0.05)
    gate.set()
    assert [(await t).stored for t in good] == [2, 2]
    with pytest.raises(TypeError):
        await refused
    await first
    await aw.pipeline.stop()
    assert [tickets[n].stored_status for n in ("good-1", "good-2", "refused")] == [200, 200, None]
    rows = aw.audit.query(limit=10)
    assert sorted((r["action"], r["status"]) for r in rows) == [("POST /good-1", 200), ("POST /good-2", 200)]
    assert aw.audit.verify().ok


class BrokenDetector:
    name = "broken"

    def detect(self, batch):
        raise RuntimeError("a detector bug")


async def test_a_failing_detector_does_not_fail_committed_events(aw):
    aw.pipeline.detectors.insert(0, BrokenDetector())
    await aw.pipeline.start()
    outcome = await aw.pipeline.submit(make_events(aw, 3))
    await aw.pipeline.stop()
    assert outcome.stored == 3
    assert event_store.count(aw.engine) == 3
    assert aw.metrics.detector_errors.labels("broken")._value.get() == 1
