"""The end of a forked child, and its connections. A ``multiprocessing`` child (fork start
method) ends with ``os._exit()``: the interpreter's exit hook that closes every transport never
runs there, so what the child had queued must be delivered by multiprocessing's own finalizers.
And a child never posts on the parent's pooled connections, not even through an httpx transport
the user gave. Each test runs an agent in its own interpreter, against the real collector."""

from __future__ import annotations

import os
import textwrap
import time
import uuid

import pytest

from tests.sdk.test_sdk_fork import run_forking_agent
from tests.sdk.test_sdk_hunt import spilled, stored, unreachable

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# The child reports, then returns without close() or flush(); the sender posts only every 30 s,
# so its events are still queued when the worker ends.
WORKER = """
import multiprocessing
import time

def work(n):
    signal.alarm(30)
    for i in range(n):
        aop.thought(f"{os.getpid()} {i}")
    return aop.session_id
"""


def run_agent(body: str) -> dict[str, dict]:
    return run_forking_agent("sync", WORKER + textwrap.dedent(body))


def test_a_multiprocessing_child_delivers_what_it_queued_before_it_ends(open_server, tmp_path):
    """The child's events were lost: multiprocessing ends it with os._exit(), atexit never ran."""
    session = f"sess_mp_{uuid.uuid4().hex}"
    got = run_agent(
        f"""
        aop = Client("mp", url="{open_server.url}", session_id="{session}",
                     spill_path="{tmp_path / "s.jsonl"}", flush_interval=30)
        aop.thought("parent")
        ctx = multiprocessing.get_context("fork")
        queue = ctx.SimpleQueue()
        child = ctx.Process(target=lambda: queue.put(work(20)))
        child.start()
        child.join(60)
        report("parent", aop, finish(aop), exitcode=child.exitcode, child_session=queue.get())
        """,
    )
    parent = got["parent"]
    assert parent["exitcode"] == 0 and parent["flushed"]
    doc = stored(open_server, parent["child_session"])
    assert [e["sequence"] for e in doc["events"]] == list(range(1, 21))
    assert doc["session"]["parent_session_id"] == session
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == ["parent"]
    assert list(tmp_path.iterdir()) == []  # delivered, not spilled


def test_pool_workers_deliver_what_they_queued_when_the_pool_is_closed(open_server, tmp_path):
    """Each worker reports as a session of its own and ends (pool.close, pool.join) through
    os._exit(): every event of every task reaches the collector."""
    got = run_agent(
        f"""
        aop = Client("pool", url="{open_server.url}", spill_path="{tmp_path / "s.jsonl"}", flush_interval=30)
        pool = multiprocessing.get_context("fork").Pool(2)
        sessions = pool.map(work, [5] * 6, chunksize=1)
        pool.close()
        pool.join()
        report("parent", aop, finish(aop), sessions=sorted(set(sessions)))
        """,
    )
    sessions = got["parent"]["sessions"]
    assert 1 <= len(sessions) <= 2
    delivered = sum(len(stored(open_server, s)["events"]) for s in sessions)
    assert delivered == 30


def test_a_multiprocessing_child_spills_within_the_timeout_when_the_collector_is_down(tmp_path):
    """Nothing answers: the worker still ends within the SDK's close deadline (2 x timeout), and
    its events wait in the spill file instead of being lost with the process."""
    spill = tmp_path / "s.jsonl"
    started = time.monotonic()
    got = run_agent(
        f"""
        aop = Client("mp", url="{unreachable()}", spill_path="{spill}", flush_interval=30,
                     timeout=0.5, max_retries=1, backoff_base=0)
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=work, args=(7,))
        began = time.monotonic()
        child.start()
        child.join(60)
        report("parent", aop, True, exitcode=child.exitcode, took=time.monotonic() - began, child_pid=child.pid)
        """,
    )
    parent = got["parent"]
    assert parent["exitcode"] == 0
    assert parent["took"] < 5, parent  # the close deadline is 1 s; a fork and an exit on a busy machine
    assert time.monotonic() - started < 60
    kept = [e for path in tmp_path.iterdir() for e in spilled(path)]  # the parent may hold a claim of it
    assert [e["payload"]["content"] for e in kept] == [f"{parent['child_pid']} {i}" for i in range(7)]


def test_a_forked_child_never_posts_through_the_users_httpx_transport(open_server, tmp_path):
    """The transport the user gave (``Transport(transport=httpx_transport)``) was used in the
    child as well: its pool held the parent's keep-alive connection, and both processes wrote
    requests on one socket. The child now posts through a default transport of its own, leaves
    the user's alone (the parent goes on using it), and warns once."""
    session = f"sess_fork_transport_{uuid.uuid4().hex}"
    got = run_agent(
        f"""
        import logging
        import httpx
        from agentwatch.sdk import Transport

        class Recording(httpx.HTTPTransport):
            def __init__(self):
                super().__init__()
                self.pids = []

            def handle_request(self, request):
                self.pids.append(os.getpid())
                return super().handle_request(request)

        warnings = []
        handler = logging.Handler()
        handler.emit = lambda record: warnings.append(record.getMessage())
        logging.getLogger("agentwatch.sdk").addHandler(handler)

        user = Recording()
        shared = Transport("{open_server.url}", spill_path="{tmp_path / "s.jsonl"}", transport=user)
        aop = Client("forker", session_id="{session}", transport=shared)
        aop.thought("parent before fork")
        assert aop.flush(10)  # a keep-alive connection now waits in the user's pool
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            aop.thought("child 1")
            first = aop.flush(10)
            aop.thought("child 2")
            report("child", aop, first and aop.flush(10), through_user=user.pids.count(os.getpid()),
                   warnings=[w for w in warnings if "httpx transport" in w])
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        aop.thought("parent after fork")
        ok = aop.flush(10)
        report("parent", aop, ok, status=status, through_user=user.pids.count(os.getpid()))
        shared.close(2)
        """,
    )
    parent, child = got["parent"], got["child"]
    assert parent["status"] == 0 and parent["flushed"] and child["flushed"]
    assert child["through_user"] == 0  # not one request of the child on the parent's connections
    assert child["stats"]["sent"] == 2
    assert len(child["warnings"]) == 1 and "default transport" in child["warnings"][0]
    assert parent["through_user"] == 2  # the parent still posts through the user's transport
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == [
        "parent before fork",
        "parent after fork",
    ]
    assert [e["payload"]["content"] for e in stored(open_server, child["session"])["events"]] == ["child 1", "child 2"]
