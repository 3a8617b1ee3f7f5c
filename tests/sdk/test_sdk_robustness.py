"""The SDK never raising into the agent, never waiting past its timeout, never losing what it can
deliver. Against real servers; the collector that never answers is a loopback listener that
takes connections and sends nothing."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest
from sqlalchemy import select

from agentwatch.config import Settings
from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from agentwatch.store.schema import events
from tests.support.server import RunningServer, free_port, run_server


@contextmanager
def silent_collector() -> Iterator[str]:
    """A URL whose listener completes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.41", 0))
        sock.listen(64)
        yield f"http://127.0.0.41:{sock.getsockname()[1]}"


def unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"


def sent(srv: RunningServer, session_id: str) -> list[dict]:
    """The session's events as the collector stored them (``GET /sessions/{id}``)."""
    with srv.client() as c:
        r = c.get(f"/sessions/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_close_never_waits_longer_than_its_timeout(tmp_path):
    with silent_collector() as url:
        transport = Transport(url, timeout=10, spill_path=tmp_path / "s.jsonl", flush_interval=0.01)
        transport.put({"n": 1})
        time.sleep(0.3)  # the sender thread is now waiting for an answer that never comes
        started = time.monotonic()
        transport.close(1.0)
        assert time.monotonic() - started < 1.6  # was flush(1) + join(1): twice the timeout


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class Unspeakable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message")


def test_tool_wrapper_never_raises_its_own_errors_into_the_agent(server, tmp_path):
    aop = AopClient("agent", url=server.url, spill_path=tmp_path / "s.jsonl", flush_interval=0.01)

    @aop.tool()
    def fetch(arg):
        return Unprintable()

    @aop.tool()
    def explode():
        raise Unspeakable()

    assert isinstance(fetch(Unprintable()), Unprintable)  # the tool runs and its result comes back
    with pytest.raises(Unspeakable):  # the tool's own exception, not one raised while reporting it
        explode()
    assert aop.flush(10)
    aop.close(5)
    got = sent(server, aop.session_id)
    assert [(e["type"], e["payload"].get("outcome")) for e in got] == [
        ("operation.tool_start", None),
        ("operation.tool_end", "success"),
        ("operation.tool_start", None),
        ("operation.tool_end", "failure"),
    ]
    assert got[0]["payload"]["input"] == {"args": ["<Unprintable object: not representable>"], "kwargs": {}}
    assert got[1]["payload"]["output"] == "<Unprintable object: not representable>"
    assert got[3]["payload"]["error"].startswith("Unspeakable: ")


def test_tool_calls_from_many_threads_never_raise(tmp_path):
    aop = AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", queue_size=100_000, max_retries=1)
    for _ in range(10_000):  # the map is full: every start now evicts the oldest open call
        aop.tool_start("t")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(1000):
                aop.tool_end(aop.tool_start("t"))
                aop.tool_start("t")
        except BaseException as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    aop.close(1)
    assert errors == []
    assert len(aop._calls) <= 10_000


def test_payloads_json_cannot_carry_as_is_are_still_delivered(server, tmp_path):
    aop = AopClient("agent", url=server.url, spill_path=tmp_path / "s.jsonl", flush_interval=0.01)
    aop.thought("before")
    call = aop.tool_start("lookup", {"ids": {1: "a", 2: "b"}, "big": 2**70, "pair": {(1, 2): "x"}})
    aop.tool_end(call, output=[10**5000])
    aop.memory("write", key="k", content={3: [2**64]})
    aop.thought("after")
    assert aop.flush(10)
    aop.close(5)
    got = sent(server, aop.session_id)
    assert [e["sequence"] for e in got] == [1, 2, 3, 4, 5]  # none lost with the odd ones
    payloads = {e["type"]: e["payload"] for e in got}
    assert payloads["operation.tool_start"]["input"] == {
        "ids": {"1": "a", "2": "b"},
        "big": str(2**70),
        "pair": {"(1, 2)": "x"},
    }
    assert payloads["operation.tool_end"]["output"] == ["<int object: not representable>"]
    assert payloads["operation.memory"]["content"] == {"3": [str(2**64)]}
    assert aop.transport.stats["dropped"] == 0


def test_events_reported_after_close_are_spilled_not_kept_in_memory(tmp_path):
    spill = tmp_path / "s.jsonl"
    aop = AopClient("agent", url=unreachable(), spill_path=spill, max_retries=1)
    aop.close(1)
    aop.thought("late")  # e.g. a child client still reporting after its parent closed the transport
    assert aop.transport.pending == 0
    assert [orjson.loads(line)["payload"] for line in spill.read_bytes().splitlines()] == [{"content": "late"}]


def aop_line(session_id: str, sequence: int) -> bytes:
    return orjson.dumps(
        {
            "spec": "aop/1.0",
            "session_id": session_id,
            "agent_id": "replayer",
            "sequence": sequence,
            "timestamp": "2026-04-03T10:00:00.000Z",
            "type": "cognition.thought",
            "payload": {"content": f"step {sequence}"},
        }
    )


def test_replay_sends_the_spill_file_in_batches_and_keeps_what_was_not_delivered(tmp_path, database_url):
    # The collector takes two requests from this address, then answers 429 (its own rate limit).
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        auth={
            "enabled": True,
            "rate_limit": {"address": 2, "window_s": 3600, "loopback_exempt": False},
        },
        detection={"atr_bundled": False, "pack": False},
    )
    spill = tmp_path / "s.jsonl"
    lines = [aop_line("replayed", n) for n in range(1, 26)]
    spill.write_bytes(b"\n".join(lines[:10] + [b'{"torn', b""] + lines[10:]) + b"\n")  # a torn line is skipped
    with run_server(settings) as srv:
        transport = Transport(srv.url, spill_path=spill, batch_size=10, max_retries=1, flush_interval=0.01)
        transport.flush(10)
        transport.close(2)
        with srv.aw.engine.connect() as conn:
            stored = conn.execute(select(events.c.sequence).where(events.c.session_id == "replayed")).scalars()
            assert sorted(stored) == list(range(1, 21))  # two batches of ten
    assert transport.stats["replayed"] == 20
    assert [orjson.loads(line)["sequence"] for line in spill.read_bytes().splitlines()] == list(range(21, 26))


def test_a_batch_over_the_collectors_byte_limit_is_sent_in_parts(tmp_path, database_url):
    settings = Settings(
        data_dir=tmp_path, database_url=database_url, auth={"enabled": False}, aop={"max_batch_bytes": 100_000}
    )
    with run_server(settings) as srv:
        aop = AopClient("big", url=srv.url, spill_path=tmp_path / "s.jsonl", batch_size=10, flush_interval=5)
        for i in range(10):  # 10 events of 20 kB: each one fine, the batch of all ten over the limit
            aop.thought(f"{i}" + "x" * 20_000)
        assert aop.flush(20)
        aop.close(5)
        assert [e["sequence"] for e in sent(srv, aop.session_id)] == list(range(1, 11))
    assert aop.transport.stats["rejected"] == 0


def test_a_url_with_no_collector_behind_it_keeps_the_events(server, tmp_path):
    """A 404 (a wrong path, a proxy's page) says nothing about the batch: it is spilled, not
    counted as refused, and delivered once the SDK is pointed at the collector."""
    spill = tmp_path / "s.jsonl"
    wrong = AopClient("agent", url=server.url + "/not-the-collector", spill_path=spill, max_retries=1)
    wrong.session_started(goal="kept")
    wrong.thought("one")
    assert wrong.flush(10)
    wrong.close(2)
    assert wrong.transport.stats["rejected"] == 0
    assert spill.read_bytes().count(b"\n") == 2
    right = AopClient("agent", url=server.url, spill_path=spill)
    assert right.flush(10)
    right.close(5)
    assert [e["type"] for e in sent(server, wrong.session_id)] == ["session.started", "cognition.thought"]
    assert not spill.exists()
