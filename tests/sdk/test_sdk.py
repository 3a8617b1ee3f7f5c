"""The agent SDK against a real server: every method, both flavours, and the collector going away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from agentwatch.api.factory import create_app
from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.sdk import AopClient, AsyncAopClient
from tests.support.server import free_port, serve_asgi


@contextmanager
def serve_on(settings: Settings, port: int) -> Iterator[Agentwatch]:
    """A real server on a port chosen before it starts (the SDK was pointed at it while it was down)."""
    aw = Agentwatch(settings.model_copy(update={"port": port}))
    with serve_asgi(create_app(aw), "127.0.0.1", port, lifespan="on"):
        yield aw


def detail(srv_client, session_id):
    r = srv_client.get(f"/sessions/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()


def test_every_method_reaches_the_collector(server, tmp_path):
    with AopClient("researcher", url=server.url, agent_version="1.2", spill_path=tmp_path / "spill.jsonl") as aop:
        aop.session_started(goal="Summarize document")
        aop.goal("find sources")
        aop.thought("looking", confidence=0.9, next_intent="search", tokens=120, cost_usd=0.001)
        aop.decision("use search", alternatives=["guess"], reasoning="facts", confidence="high")
        aop.uncertainty("is this current?", confidence=0.3)

        @aop.tool()
        def search(query: str) -> list[str]:
            return [query.upper()]

        @aop.tool("explode")
        def broken() -> None:
            raise ValueError("boom")

        assert search("aop") == ["AOP"]
        with pytest.raises(ValueError, match="boom"):
            broken()
        call = aop.tool_start("fetch", {"url": "http://127.0.0.1/x", "obj": object()})  # not JSON: sent as repr
        aop.tool_end(call, success=True, output="ok")
        child = aop.agent_spawn("summarizer", task="summarize")
        child.session_started(goal="summarize")
        child.session_ended("completed")
        aop.memory("write", key="notes", content="remember")
        aop.external_call("http://127.0.0.1/api", method="GET", status_code=200, success=True, duration_ms=3.5)
        aop.heartbeat(step=9, total_tokens=500)
        aop.session_ended("completed", total_tokens=900, total_cost_usd=0.01)
        assert aop.flush(10)
        session_id, child_id = aop.session_id, child.session_id
    assert aop.transport.stats["rejected"] == 0 and aop.transport.stats["sent"] == 18
    with server.client() as c:
        doc = detail(c, session_id)
        types = [e["type"] for e in doc["events"]]
        assert types[:3] == ["session.started", "cognition.goal", "cognition.thought"]
        assert types.count("operation.tool_start") == 3 and types.count("operation.tool_end") == 3
        assert [e["sequence"] for e in doc["events"]] == list(range(1, 17))
        ends = [e["payload"] for e in doc["events"] if e["type"] == "operation.tool_end"]
        assert ends[0]["tool"] == "search" and ends[0]["outcome"] == "success" and ends[0]["output"] == ["AOP"]
        assert ends[1]["tool"] == "explode" and ends[1]["outcome"] == "failure" and "boom" in ends[1]["error"]
        starts = [e["payload"] for e in doc["events"] if e["type"] == "operation.tool_start"]
        assert starts[0]["input"] == {"args": ["aop"], "kwargs": {}}
        assert starts[2]["input"]["obj"].startswith("<object object")
        s = doc["session"]
        assert s["status"] == "completed" and s["goal"] == "Summarize document" and s["agent_version"] == "1.2"
        assert s["total_tokens"] == 900 and s["total_steps"] == 13
        assert [k["id"] for k in doc["children"]] == [child_id]
        assert detail(c, child_id)["session"]["parent_session_id"] == session_id


async def test_async_flavour_and_async_tools(server, tmp_path):
    async with AsyncAopClient("async-agent", url=server.url, spill_path=tmp_path / "spill.jsonl") as aop:
        aop.session_started(goal="async")

        @aop.tool()
        async def lookup(key: str) -> str:
            await asyncio.sleep(0)
            return key * 2

        assert await lookup("ab") == "abab"
        aop.session_ended("failed")
        assert await aop.flush(10)
    with server.client() as c:  # the server runs in its own thread: a blocking read is fine here
        doc = detail(c, aop.session_id)
    assert [e["type"] for e in doc["events"]] == [
        "session.started",
        "operation.tool_start",
        "operation.tool_end",
        "session.ended",
    ]
    assert doc["session"]["status"] == "failed"


def test_collector_down_then_back_loses_nothing_and_duplicates_nothing(settings, tmp_path):
    port = free_port()
    spill = tmp_path / "spill.jsonl"
    aop = AopClient(
        "resilient",
        url=f"http://127.0.0.1:{port}",
        spill_path=spill,
        queue_size=20,  # overflow goes to the spill file, not to the floor
        batch_size=10,
        max_retries=2,
        backoff_base=0.05,
        backoff_max=0.3,
        timeout=1.0,
    )
    started = time.monotonic()
    for i in range(120):
        aop.thought(f"step {i}")
    assert time.monotonic() - started < 2.0  # never waits on the missing collector
    assert aop.flush(10)  # everything is either delivered or spilled
    assert spill.exists() and aop.transport.stats["sent"] == 0
    with serve_on(settings, port) as aw:
        for i in range(120, 150):
            aop.thought(f"step {i}")
        assert aop.flush(20)
        aop.close(5)
        with AopClient("probe", url=f"http://127.0.0.1:{port}", spill_path=tmp_path / "other.jsonl") as probe:
            r = probe.transport._http.get(f"http://127.0.0.1:{port}/sessions/{aop.session_id}")
        doc = r.json()
        assert [e["sequence"] for e in doc["events"]] == list(range(1, 151))
        assert doc["session"]["event_count"] == 150
        assert aw.pipeline.committed_total == 150
    assert not spill.exists()
    assert aop.transport.stats["dropped"] == 0


def test_a_later_process_replays_the_spill_file(settings, tmp_path):
    port = free_port()
    spill = tmp_path / "spill.jsonl"
    first = AopClient("gone", url=f"http://127.0.0.1:{port}", spill_path=spill, max_retries=1, backoff_base=0.01)
    first.session_started(goal="before the crash")
    first.thought("one")
    first.close(timeout=1.0)  # the collector is down: the events are spilled, close returns
    assert spill.read_bytes().count(b"\n") == 2
    with serve_on(settings, port):
        second = AopClient("next", url=f"http://127.0.0.1:{port}", spill_path=spill)
        assert second.flush(20)
        second.close(5)
        with AopClient("probe", url=f"http://127.0.0.1:{port}", spill_path=tmp_path / "p.jsonl") as probe:
            doc = probe.transport._http.get(f"http://127.0.0.1:{port}/sessions/{first.session_id}").json()
        assert doc["session"]["goal"] == "before the crash" and doc["session"]["event_count"] == 2
    assert not spill.exists()
