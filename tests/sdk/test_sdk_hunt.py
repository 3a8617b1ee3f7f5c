"""The agent SDK held to the bar of code living in someone else's process: it never loses an
accepted event without counting it, never hangs the host (close, exit), keeps memory bounded,
keeps a session's events in order whatever the threads, and tells the host what went wrong
without leaking its credentials. Against the real server, and against small fake collectors
(asyncio servers on 127.0.0.x) for the answers a real one rarely gives."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import orjson
import pytest

from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from tests.support.server import RunningServer, free_port

Answer = Callable[[int, bytes], bytes | None]


def answer(status: int, body: bytes = b'{"ok": true}', headers: dict[str, str] | None = None) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
    ).encode() + body


class FakeCollector:
    """A collector that answers each request as ``reply(n, body)`` says (None: close the
    connection without an answer), and remembers the bodies and when they came."""

    def __init__(self, reply: Answer, host: str) -> None:
        self.reply, self.host = reply, host
        self.bodies: list[bytes] = []
        self.heads: list[list[str]] = []
        self.times: list[float] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def events(self) -> list[dict]:
        return [e for body in self.bodies for e in orjson.loads(body)]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._connection, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        for writer in self._writers:
            writer.close()
        self._loop.run_until_complete(server.wait_closed())
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                length = next((int(h.split(":")[1]) for h in head if h.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length)
                self.bodies.append(body)
                self.heads.append(head)
                self.times.append(time.monotonic())
                out = self.reply(len(self.bodies), body)
                if out is None:
                    return
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    def __enter__(self) -> FakeCollector:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@contextmanager
def silent_collector() -> Iterator[str]:
    """A URL whose listener completes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.43", 0))
        sock.listen(64)
        yield f"http://127.0.0.43:{sock.getsockname()[1]}"


def unreachable() -> str:
    return f"http://127.0.0.1:{free_port()}"


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def stored(srv: RunningServer, session_id: str) -> dict:
    with srv.client() as c:
        r = c.get(f"/sessions/{session_id}")
    assert r.status_code == 200, r.text
    return r.json()


def spilled(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# -- retries ------------------------------------------------------------------------------
def test_a_long_outage_never_loses_the_spill_file(tmp_path):
    """Every failed attempt doubled the next wait with no bound on the exponent: after 1024
    failures ``2**1024`` is no float, the sender crashed mid-replay and deleted the spill file."""
    spill = tmp_path / "spill" / "s.jsonl"
    with FakeCollector(lambda n, body: None, "127.0.0.44") as down:  # takes the request, closes, no answer
        aop = AopClient(
            "patient",
            url=down.url,
            spill_path=spill,
            max_retries=1,
            backoff_base=0.0001,
            backoff_max=0.0001,
            flush_interval=0.001,
        )
        aop.thought("kept through the outage")
        assert wait_for(lambda: len(down.bodies) > 2 and spill.parent.exists())
        assert wait_for(lambda: len(down.bodies) >= 1100 or not any(spill.parent.iterdir()), 60)
        aop.close(2)
    assert [e["payload"]["content"] for e in spilled(spill)] == ["kept through the outage"]
    assert aop.transport.stats["dropped"] == 0


def test_retry_after_is_honoured_in_both_forms_and_capped(tmp_path):
    """A 503/429 with Retry-After was retried on the SDK's own 0.1 s schedule; now the wait is
    the collector's (seconds or an HTTP-date), never longer than backoff_max."""

    def reply(n: int, body: bytes) -> bytes:
        in_two_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
        retry_after = {1: "1", 2: in_two_seconds, 3: "86400"}.get(n)
        return answer(503 if n != 2 else 429, b"{}", {"Retry-After": retry_after}) if retry_after else answer(200)

    with FakeCollector(reply, "127.0.0.45") as fake:
        t = Transport(
            fake.url,
            spill_path=tmp_path / "s.jsonl",
            max_retries=4,
            backoff_base=0.01,
            backoff_max=1.5,
            flush_interval=0.01,
        )
        t.put({"n": 1})
        assert t.flush(15)
        t.close(2)
    gaps = [b - a for a, b in zip(fake.times, fake.times[1:], strict=False)]
    assert len(gaps) == 3 and t.stats["sent"] == 1
    assert gaps[0] >= 0.95  # "1": one second
    assert gaps[1] >= 0.95  # a date two seconds ahead, to the second: at least one second away
    assert 1.4 <= gaps[2] < 3.0  # a day asked for, backoff_max (1.5 s) waited


def test_a_redirect_keeps_the_batch_instead_of_discarding_it(tmp_path):
    """A 3xx (a collector behind a redirect) is no verdict on the batch: it was counted as
    refused and thrown away; now it is kept and sent again."""
    answers = [answer(308, b"", {"Location": "https://127.0.0.1/events"}), answer(200)]
    with FakeCollector(lambda n, body: answers[min(n, 2) - 1], "127.0.0.46") as fake:
        t = Transport(fake.url, spill_path=tmp_path / "s.jsonl", max_retries=2, backoff_base=0.01, flush_interval=0.01)
        t.put({"n": 1})
        assert t.flush(10)
        t.close(2)
    assert len(fake.bodies) == 2
    assert t.stats["rejected"] == 0 and t.stats["sent"] == 1


def test_the_collectors_reason_reaches_the_log(tmp_path, caplog):
    """A refused batch was logged as 'refused with 400' without the collector's reason, and a
    401 (wrong api_key) kept every event in the spill file without a word."""
    refusal = b'{"error": {"code": "invalid_request", "message": "body: must be a JSON array or object"}}'
    caplog.set_level(logging.WARNING, logger="agentwatch.sdk")
    with FakeCollector(lambda n, body: answer(400, refusal), "127.0.0.47") as fake:
        t = Transport(fake.url, spill_path=tmp_path / "a.jsonl", max_retries=3, flush_interval=0.01)
        t.put({"n": 1})
        assert t.flush(10)
        t.close(2)
    assert len(fake.bodies) == 1 and t.stats["rejected"] == 1  # not retried
    with FakeCollector(lambda n, body: answer(401, b'{"error": {"message": "bad key"}}'), "127.0.0.47") as fake:
        t = Transport(fake.url, spill_path=tmp_path / "b.jsonl", max_retries=2, backoff_base=0.01)
        t.put({"n": 1})
        assert t.flush(10)
        t.close(2)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("400" in m and "must be a JSON array or object" in m for m in messages), messages
    assert any("401" in m and "bad key" in m for m in messages), messages


# -- shutdown -------------------------------------------------------------------------------
def test_close_twice_and_flush_after_close_return_at_once(tmp_path):
    """The second close (``with`` after an explicit close) and a flush after close each waited
    twice the timeout for a sender thread that had already ended."""
    aop = AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", max_retries=1, timeout=2)
    aop.thought("one")
    aop.close(2)
    started = time.monotonic()
    aop.close()
    assert aop.flush()  # everything is in the spill file: nothing left to wait for
    assert time.monotonic() - started < 0.5


def test_close_spills_the_batch_still_being_posted(tmp_path):
    """close() returns at its deadline while the sender waits on a collector that never
    answers; the batch in flight was then in no queue and no file, lost when the process ended."""
    spill = tmp_path / "s.jsonl"
    with silent_collector() as url:
        t = Transport(url, timeout=10, spill_path=spill, flush_interval=0.01)
        t.put({"n": 1})
        assert wait_for(lambda: t.pending == 0)  # taken by the sender, posted, unanswered
        started = time.monotonic()
        t.close(0.5)
        assert time.monotonic() - started < 1.5
        assert spilled(spill) == [{"n": 1}]


def run_agent(code: str, timeout: float = 30) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=timeout, cwd="/")
    return time.monotonic() - started


def test_events_of_a_client_never_closed_are_delivered_at_exit(open_server, tmp_path):
    """An agent that never calls close(): what was still queued died with the process."""
    session = f"sess_exit_{os.getpid()}_{time.monotonic_ns()}"
    run_agent(
        f"""
        from agentwatch.sdk import AopClient
        aop = AopClient("leaver", url="{open_server.url}", session_id="{session}",
                        spill_path="{tmp_path / "s.jsonl"}", flush_interval=30)
        for i in range(5):
            aop.thought(f"step {{i}}")
        """
    )
    assert [e["sequence"] for e in stored(open_server, session)["events"]] == [1, 2, 3, 4, 5]


def test_exit_with_a_silent_collector_spills_within_the_deadline(tmp_path):
    spill = tmp_path / "s.jsonl"
    with silent_collector() as url:
        took = run_agent(
            f"""
            from agentwatch.sdk import AopClient
            aop = AopClient("leaver", url="{url}", spill_path="{spill}", timeout=1, flush_interval=0.01)
            for i in range(5):
                aop.thought(f"step {{i}}")
            """
        )
    assert took < 10  # the interpreter's start, plus a close bounded by 2 x timeout
    assert sorted(e["sequence"] for e in spilled(spill)) == [1, 2, 3, 4, 5]


def test_a_claim_left_by_a_dead_process_is_replayed(open_server, tmp_path):
    """A process killed mid-replay leaves its claimed spill file renamed ``*.<pid>-x.replay``:
    no later process looked at it again."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    pid = int(gone.stdout)
    spill = tmp_path / "s.jsonl"
    session = f"sess_orphan_{time.monotonic_ns()}"
    line = {
        "spec": "aop/1.0",
        "session_id": session,
        "agent_id": "crashed",
        "sequence": 1,
        "timestamp": "2026-04-03T10:00:00.000Z",
        "type": "cognition.thought",
        "payload": {"content": "claimed, then the process died"},
    }
    (tmp_path / f"s.jsonl.{pid}-0badf00d.replay").write_bytes(orjson.dumps(line) + b"\n")
    aop = AopClient("next", url=open_server.url, spill_path=spill)
    assert aop.flush(20)
    aop.close(5)
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == [
        "claimed, then the process died"
    ]
    assert list(tmp_path.iterdir()) == []


# -- memory and input -----------------------------------------------------------------------
def test_the_report_is_what_the_agent_said_when_it_said_it(open_server, tmp_path):
    """The queue held the agent's own objects: changing them after the call changed the report."""
    aop = AopClient("mutator", url=open_server.url, spill_path=tmp_path / "s.jsonl", flush_interval=5)
    state = {"todo": ["search"]}
    aop.memory("write", key="plan", content=state)
    state["todo"].append("written after the report")
    assert aop.flush(10)
    aop.close(5)
    assert stored(open_server, aop.session_id)["events"][0]["payload"]["content"] == {"todo": ["search"]}


HELD_BY_PUTS = """
import os, socket, sys
from agentwatch.sdk.transport import Transport

def resident():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

with socket.socket() as sock:  # a collector that completes connections and never answers
    sock.bind(("127.0.0.43", 0))
    sock.listen(64)
    url = f"http://127.0.0.43:{sock.getsockname()[1]}"
    t = Transport(url, timeout=30, spill_path=sys.argv[1], flush_interval=0.01, spill_max_bytes=200_000_000)
    before = resident()
    for i in range(100):  # 100 MB reported; the agent keeps none of it
        t.put({"n": i, "blob": f"{i:04d}" + "x" * 1_000_000})
    print(resident() - before, flush=True)
    t.close(0.5)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident set from /proc")
def test_queued_memory_is_bounded_in_bytes(tmp_path):
    """The queue was bounded in events only (10,000): large events stayed in memory whole.
    Measured in a fresh interpreter: the resident set of a test worker that ran other tests
    moves for reasons of its own."""
    spill = tmp_path / "s.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", HELD_BY_PUTS, str(spill)], capture_output=True, check=True, timeout=120, cwd="/"
    )
    held = int(run.stdout.split()[0])
    assert held < 60_000_000, held  # the queue (16 MiB), the batch in flight (4 MiB) and its body
    kept = [e["n"] for path in tmp_path.iterdir() for e in spilled(path)]  # with the claim being replayed
    assert sorted(kept) == list(range(100))


def test_text_with_lone_surrogates_is_sent_not_dropped(open_server, tmp_path):
    """A file name decoded with surrogateescape made the whole event unencodable: dropped."""
    name = os.fsdecode(b"report-\xff.txt")
    aop = AopClient("files", url=open_server.url, spill_path=tmp_path / "s.jsonl")
    aop.thought(f"reading {name}")
    aop.memory("read", key=name, content={name: [name]})
    assert aop.flush(10)
    aop.close(5)
    got = [e["payload"] for e in stored(open_server, aop.session_id)["events"]]
    assert got[0]["content"] == "reading report-\\udcff.txt"
    assert got[1]["content"] == {"report-\\udcff.txt": ["report-\\udcff.txt"]}
    assert aop.transport.stats["dropped"] == 0


def test_an_event_that_cannot_be_built_is_counted(tmp_path):
    aop = AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", max_retries=1)
    aop.emit("cognition.thought", ["not", "an", "object"])  # type: ignore[arg-type]
    aop.close(1)
    assert aop.transport.stats["dropped"] == 1


# -- order ------------------------------------------------------------------------------------
def test_threads_reporting_at_once_keep_the_sessions_order(tmp_path):
    """The sequence was taken under a lock but queued outside it: the collector received a
    session's events out of order (its streak rules count in arrival order)."""
    with FakeCollector(lambda n, body: answer(200), "127.0.0.48") as fake:
        aop = AopClient("busy", url=fake.url, spill_path=tmp_path / "s.jsonl", flush_interval=0.01)

        def work() -> None:
            for _ in range(500):
                aop.thought("x")

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            threads = [threading.Thread(target=work) for _ in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            sys.setswitchinterval(interval)
        assert aop.flush(20)
        aop.close(5)
        got = fake.events()
    assert [e["sequence"] for e in got] == list(range(1, 4001))
    stamps = [e["timestamp"] for e in got]
    assert stamps == sorted(stamps)


def test_a_full_queue_keeps_the_sessions_order(open_server, tmp_path):
    """With the queue full, new events went to the spill file and were replayed before the
    older ones still queued: fail, fail, ok, fail, fail arrived as fail x4, ok, and the server
    raised a critical error_cascade that never happened."""
    aop = AopClient("overflow", url=open_server.url, spill_path=tmp_path / "s.jsonl", queue_size=3, flush_interval=30)
    for page, ok in enumerate((False, False, True, False, False)):
        aop.tool_end(aop.tool_start("fetch", {"page": page}), success=ok)
    assert aop.flush(20)
    aop.close(5)
    doc = stored(open_server, aop.session_id)
    assert len(doc["events"]) == 10
    assert doc["alerts"] == []


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "127.0.0.1:7777"}, "url"),  # no scheme: every post failed, events spilled forever
        ({"url": "ftp://127.0.0.1"}, "url"),
        ({"url": "http://[::1"}, "url"),  # the sender crashed on each batch: events lost, uncounted
        ({"url": "http://127.0.0.1:99999"}, "url"),
        ({"backoff_base": -1}, "backoff_base"),  # time.sleep(-1) raised in the sender: batch lost
        ({"timeout": None}, "timeout"),  # close() raised TypeError and never stopped the thread
        ({"timeout": float("inf")}, "timeout"),  # close() raised OverflowError: the same
        ({"flush_interval": 0}, "flush_interval"),  # the sender spun on a core
    ],
)
def test_an_unusable_configuration_is_refused_by_name(tmp_path, options, field):
    kwargs = {"url": unreachable(), "spill_path": tmp_path / "s.jsonl", **options}
    with pytest.raises(ValueError, match=f"^{field}: "):
        AopClient("agent", **kwargs)


def test_a_transport_that_is_not_the_sdks_is_refused(tmp_path):
    """An httpx transport passed as ``transport=`` was taken for the SDK's own: every report
    failed on it, logged and lost, uncounted."""
    with pytest.raises(ValueError, match="^transport: "):
        AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", transport=httpx.HTTPTransport())


def test_an_api_key_that_cannot_be_sent_is_refused_without_quoting_it(tmp_path):
    """A key with a newline failed every post in the background, silently, for ever."""
    with pytest.raises(ValueError, match="^api_key: ") as err:
        AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", api_key="s3cret-key\nX")
    assert "s3cret" not in str(err.value)


def test_credentials_in_the_url_never_reach_a_log(tmp_path, caplog):
    """``http://user:password@host`` was logged whole by the HTTP client on every post."""
    caplog.set_level(logging.DEBUG)
    with FakeCollector(lambda n, body: answer(200), "127.0.0.49") as fake:
        url = fake.url.replace("http://", "http://proxyuser:Pa55w0rd@")
        t = Transport(url, spill_path=tmp_path / "s.jsonl", flush_interval=0.01)
        t.put({"n": 1})
        assert t.flush(10)
        t.close(2)
    assert t.stats["sent"] == 1
    assert any(h.lower().startswith("authorization: basic ") for h in fake.heads[0])  # still sent, as basic auth
    assert caplog.records and not [r for r in caplog.records if "Pa55w0rd" in r.getMessage()]


def test_the_spill_file_is_readable_by_its_owner_only(tmp_path):
    """It holds thoughts and tool inputs; it was created 0644 in a 0755 directory."""
    spill = tmp_path / "home" / ".agentwatch" / "s.jsonl"
    aop = AopClient("agent", url=unreachable(), spill_path=spill, max_retries=1)
    aop.thought("private")
    aop.close(1)
    assert stat.S_IMODE(spill.stat().st_mode) == 0o600
    assert stat.S_IMODE(spill.parent.stat().st_mode) == 0o700
