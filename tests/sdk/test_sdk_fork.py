"""A client used on both sides of ``os.fork()``: the child has no sender thread (threads do not
survive a fork) and may inherit a lock another thread held. Each test runs an agent in its own
interpreter that forks for real, against the real collector; a hung child is ended by an alarm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.sdk.test_sdk_hunt import stored

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FLAVOURS = {
    "sync": (
        "from agentwatch.sdk import AopClient as Client\n"
        "def finish(aop):\n"
        "    ok = aop.flush(5)\n"
        "    aop.close(2)\n"
        "    return ok\n"
    ),
    "async": (
        "import asyncio\n"
        "from agentwatch.sdk import AsyncAopClient as Client\n"
        "async def finishing(aop):\n"
        "    ok = await aop.flush(5)\n"
        "    await aop.close(2)\n"
        "    return ok\n"
        "def finish(aop):\n"
        "    return asyncio.run(finishing(aop))\n"
    ),
}

REPORT = """
import json, os, signal

def report(who, aop, ok, **more):
    doc = {"who": who, "flushed": ok, "session": aop.session_id, "parent": aop.parent_session_id, "stats": aop.stats}
    print(json.dumps({**doc, **more}), flush=True)
"""


def run_forking_agent(flavour: str, body: str) -> dict[str, dict]:
    """Run ``body`` after the flavour's ``Client``/``finish`` and ``report``; what each side reported."""
    code = FLAVOURS[flavour] + REPORT + textwrap.dedent(body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=90, cwd="/", text=True)
    assert done.returncode == 0, done.stderr
    return {doc["who"]: doc for doc in map(json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_child_of_a_fork_reports_and_never_resends_the_parents_events(open_server, tmp_path, flavour):
    """The child's events waited in a queue no thread drained (its flush timed out), and its
    close spilled the parent's queued events with its own, replayed later as duplicates."""
    session = f"sess_fork_{uuid.uuid4().hex}"
    got = run_forking_agent(
        flavour,
        f"""
        aop = Client("forker", url="{open_server.url}", session_id="{session}",
                     spill_path="{tmp_path / "s.jsonl"}", flush_interval=30)
        aop.thought("parent before fork")  # still queued at the fork: the sender posts every 30 s
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            aop.thought("child")
            report("child", aop, finish(aop))
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        aop.thought("parent after fork")
        report("parent", aop, finish(aop), status=status)
        """,
    )
    parent, child = got["parent"], got["child"]
    assert parent["status"] == 0 and parent["flushed"] and child["flushed"]
    assert child["stats"]["sent"] == 1  # its own event, not the parent's queued one again
    assert parent["stats"]["sent"] == 2 and parent["stats"]["spilled"] == child["stats"]["spilled"] == 0
    # the child reports as a session of its own: both numbering from the same point into one
    # session, the collector would keep one event of each pair and ignore the other
    assert parent["session"] == session and child["parent"] == session and child["session"] != session
    doc = stored(open_server, session)
    assert [(e["sequence"], e["payload"]["content"]) for e in doc["events"]] == [
        (1, "parent before fork"),
        (2, "parent after fork"),
    ]
    doc = stored(open_server, child["session"])
    assert [(e["sequence"], e["payload"]["content"]) for e in doc["events"]] == [(1, "child")]
    assert doc["session"]["parent_session_id"] == session
    assert list(tmp_path.iterdir()) == []  # nothing spilled, nothing left to replay


def test_a_lock_held_by_another_thread_at_the_fork_does_not_hang_the_child(open_server, tmp_path):
    """A thread was inside a report (its payload's repr is slow) when the agent forked: the child
    inherited the session's lock held by a thread it does not have, and hung on its first report."""
    session = f"sess_fork_lock_{uuid.uuid4().hex}"
    got = run_forking_agent(
        "sync",
        f"""
        import threading

        inside, release = threading.Event(), threading.Event()

        class SlowRepr:
            def __repr__(self):
                inside.set()
                release.wait(30)
                return "slow"

        aop = Client("forker", url="{open_server.url}", session_id="{session}", spill_path="{tmp_path / "s.jsonl"}")
        reporter = threading.Thread(target=lambda: aop.memory("write", content=SlowRepr()))
        reporter.start()
        inside.wait(10)
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)
            aop.thought("child")
            report("child", aop, finish(aop))
            os._exit(0)
        release.set()
        reporter.join()
        _, status = os.waitpid(pid, 0)
        report("parent", aop, finish(aop), status=status)
        """,
    )
    assert "child" in got, "the child hung on its first report"
    assert got["child"]["flushed"] and got["parent"]["status"] == 0
    assert [e["payload"]["content"] for e in stored(open_server, got["child"]["session"])["events"]] == ["child"]
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == ["slow"]
