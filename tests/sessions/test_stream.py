"""GET /stream against a real server, read as raw SSE text with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import orjson

from tests.sessions.aop import ev

SHARED_AOP = {"ping_interval_s": 0.3, "stream_buffer": 8}  # see tests/sessions/conftest.py


def frames(lines: Iterator[str]) -> Iterator[dict]:
    """SSE frames: {"id", "data", "comment", "retry"} per blank-line-terminated block."""
    cur: dict = {}
    for line in lines:
        if line == "":
            if cur:
                yield cur
            cur = {}
            continue
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
            continue
        name, _, value = line.partition(": ")
        cur[name] = value


def post(c, events):
    r = c.post("/events", json=events)
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text


def test_framing_events_as_sent_alerts_and_pings(shared_server):
    raw = (
        b'{"spec":"aop/1.0","session_id":"live","agent_id":"a","sequence":1,'
        b'"timestamp":"2026-04-03T10:00:00Z","type":"session.started","payload":{"goal":"watch me"}}'
    )
    with shared_server.client() as c, c.stream("GET", "/stream") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        assert next(lines) == "retry: 2000"
        first = next(frames(lines))
        hello = orjson.loads(first["data"])
        assert hello["type"] == "connected" and hello["timestamp"].endswith("Z")
        assert c.post("/events", content=raw).status_code == 200
        (got,) = event_frames(lines, 1)  # a ping comment may come first
        event_id = c.post("/events", content=raw).json()["event_id"]  # the duplicate tells us its id
        assert got["id"] == event_id
        assert got["data"] == '{"kind":"event","data":' + raw.decode() + "}"
        post(c, [ev("live", i, "operation.tool_end", {"tool": "t", "success": False}) for i in (2, 3, 4)])
        seen_alert = None
        seen_ping = False
        deadline = time.monotonic() + 10
        for f in frames(lines):
            if f.get("comment") == "ping":
                seen_ping = True
            elif "data" in f and orjson.loads(f["data"])["kind"] == "alert":
                seen_alert = orjson.loads(f["data"])["data"]
                assert "id" not in f  # alerts carry no id: resume is keyed on events
            if (seen_alert and seen_ping) or time.monotonic() > deadline:
                break
        assert seen_ping
        assert seen_alert is not None
        assert set(seen_alert) >= {"id", "session_id", "type", "message", "severity", "created_at"}
        assert seen_alert["type"] == "error_cascade" and seen_alert["severity"] == "critical"
        assert seen_alert["session_id"] == "live"


def event_frames(lines, n, timeout=10.0):
    out = []
    deadline = time.monotonic() + timeout
    for f in frames(lines):
        if "id" in f:
            out.append(f)
        if len(out) >= n or time.monotonic() > deadline:
            break
    return out


def test_resume_with_last_event_id_replays_then_goes_live(shared_server):
    with shared_server.client() as c:
        with c.stream("GET", "/stream") as resp:
            lines = resp.iter_lines()
            post(c, [ev("r", 1, "session.started")])
            (first,) = event_frames(lines, 1)
        post(c, [ev("r", 2, "cognition.thought", {"content": "missed 1"})])
        post(c, [ev("r", 3, "cognition.thought", {"content": "missed 2"})])
        with c.stream("GET", "/stream", headers={"Last-Event-ID": first["id"]}) as resp:
            lines = resp.iter_lines()
            replayed = event_frames(lines, 2)
            assert [orjson.loads(f["data"])["data"]["sequence"] for f in replayed] == [2, 3]
            post(c, [ev("r", 4, "cognition.thought", {"content": "live"})])
            (live,) = event_frames(lines, 1)
            assert orjson.loads(live["data"])["data"]["sequence"] == 4
        with c.stream("GET", "/stream", headers={"Last-Event-ID": "no-such-id"}) as resp:
            lines = resp.iter_lines()
            next(lines)
            notices = []
            for f in frames(lines):
                notices.append(orjson.loads(f["data"]))
                if len(notices) == 2:
                    break
            assert [n["type"] for n in notices] == ["connected", "resume_failed"]


def test_session_filter(shared_server):
    with shared_server.client() as c, c.stream("GET", "/stream", params={"session_id": "mine"}) as resp:
        lines = resp.iter_lines()
        post(c, [ev("other", 1, "session.started"), ev("mine", 1, "session.started")])
        post(c, [ev("other", 2, "session.ended"), ev("mine", 2, "session.ended")])
        got = event_frames(lines, 2)
        assert [orjson.loads(f["data"])["data"]["session_id"] for f in got] == ["mine", "mine"]
        assert c.get("/stream", params={"session_id": "x" * 200}).status_code == 400


def test_slow_client_is_cut_and_resumes_without_a_gap(shared_server):
    big = "x" * 60_000
    total = 150
    with httpx.Client(base_url=shared_server.url, timeout=30) as reader, shared_server.client() as c:
        with reader.stream("GET", "/stream") as resp:
            lines = resp.iter_lines()
            next(lines)
            next(frames(lines))  # connected; from here on the client stops reading
            for i in range(1, total + 1):
                post(c, [ev("flood", i, "cognition.thought", {"content": big})])
            received = []
            deadline = time.monotonic() + 20
            for f in frames(lines):  # the server ended the response: this loop terminates
                if "id" in f:
                    received.append(f["id"])
                assert time.monotonic() < deadline
        assert 0 < len(received) < total
        health = c.get("/health").json()
        assert health["subscribers"] == 0
        with reader.stream("GET", "/stream", headers={"Last-Event-ID": received[-1]}) as resp:
            rest = event_frames(resp.iter_lines(), total - len(received))
        seqs = [orjson.loads(f["data"])["data"]["sequence"] for f in rest]
        assert seqs == list(range(len(received) + 1, total + 1))


def test_stream_client_cap_answers_503(tmp_path):
    from agentwatch.config import Settings
    from tests.support.server import run_server

    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        auth={"enabled": False},
        aop={"stream_max_clients": 1},
    )
    with run_server(settings) as srv, srv.client() as c, c.stream("GET", "/stream") as first:
        lines = first.iter_lines()
        assert next(lines) == "retry: 2000"
        r = c.get("/stream")
        assert r.status_code == 503 and r.json()["error"]["message"] == "stream: too many live clients"


def test_stream_client_cap_holds_for_clients_arriving_together(tmp_path):
    """The place is taken when the request is accepted, not when the stream's first frame is made,
    so a burst of simultaneous connections cannot all pass the check; a client that leaves (or
    never reads a byte) gives its place back."""
    import asyncio

    from agentwatch.config import Settings
    from tests.support.server import run_server

    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'a.db'}",
        auth={"enabled": False},
        aop={"stream_max_clients": 2},
    )

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:

            async def one() -> int:
                async with c.stream("GET", "/stream") as r:
                    if r.status_code == 200:
                        await asyncio.sleep(1.0)  # hold the place while the others arrive
                    return r.status_code

            return list(await asyncio.gather(*(one() for _ in range(20))))

    with run_server(settings) as srv:
        codes = asyncio.run(burst(srv.url))
        assert codes.count(200) == 2 and codes.count(503) == 18, codes
        deadline = time.monotonic() + 10
        with srv.client() as c:
            while c.get("/health").json()["subscribers"] != 0:
                assert time.monotonic() < deadline, "the places were not given back"
                time.sleep(0.05)
        assert asyncio.run(burst(srv.url)).count(200) == 2


def test_a_line_separator_in_an_event_does_not_cut_its_frame_for_splitlines_readers(shared_server):
    """httpx's ``iter_lines`` splits at U+2028 as ``str.splitlines`` does; SSE does not. The
    frame escapes it, so such a reader still gets one frame with the event as sent."""
    thought = "first line\u2028second\u2029third\x85end"
    with shared_server.client() as c, c.stream("GET", "/stream", params={"session_id": "sep"}) as resp:
        lines = resp.iter_lines()
        post(c, [ev("sep", 1, "cognition.thought", {"reasoning": thought})])
        (got,) = event_frames(lines, 1)
        assert orjson.loads(got["data"])["data"]["payload"]["reasoning"] == thought
