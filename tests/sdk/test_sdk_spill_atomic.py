"""A spill file append is all or nothing. A write cut short (a full disk, a file size limit)
used to leave the piece of a line it had written; the next event was appended right after it,
and on replay the two made one malformed line: two events lost, one of them never counted. The
cut is real here: an agent in its own interpreter under ``RLIMIT_FSIZE``, where a write past the
limit is short and the next one fails with EFBIG, as a write to a full disk fails with ENOSPC."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import orjson
import pytest

from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from tests.sdk.test_sdk_hunt import FakeCollector, answer, stored, unreachable, wait_for
from tests.sdk.test_sdk_robustness import aop_line

resource = pytest.importorskip("resource")


def lines_of(path) -> list[dict]:
    """Every line of the spill file, each of which must be one whole JSON event."""
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n")[:-1]]


def test_a_write_cut_short_leaves_no_piece_of_a_line(open_server, tmp_path):
    spill = tmp_path / "s.jsonl"
    session = f"sess_cut_{uuid.uuid4().hex}"
    code = textwrap.dedent(
        f"""
        import json, os, resource, signal
        from agentwatch.sdk import AopClient

        aop = AopClient("disk", url="{unreachable()}", session_id="{session}", spill_path="{spill}", max_retries=1)
        aop.close(1)  # from now on each report is appended to the spill file as it is made

        def report(first, last):
            for i in range(first, last):
                aop.thought(f"{{i:02d}} " + "x" * 150)

        report(1, 6)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not the process
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize("{spill}") + 100, hard))
        report(6, 11)  # each one: 100 bytes written, then EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        report(11, 16)
        print(json.dumps(aop.stats))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd="/", text=True)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert spill.read_bytes().endswith(b"\n")
    kept = lines_of(spill)  # fails on a line with a piece of another stuck to its front
    assert [e["sequence"] for e in kept] == [*range(1, 6), *range(11, 16)]
    assert stats["spilled"] == 10
    assert stats["dropped"] == stats["spill_failed"] == 5  # the lost ones are counted, and why
    assert "could not write the spill file" in done.stderr
    up = AopClient("disk", url=open_server.url, spill_path=spill)
    assert up.flush(10)
    up.close(5)
    assert [e["sequence"] for e in stored(open_server, session)["events"]] == [*range(1, 6), *range(11, 16)]
    assert up.stats["replayed"] == 10 and up.stats["spill_malformed"] == 0


def test_a_torn_line_left_by_a_crash_does_not_swallow_the_next_event(open_server, tmp_path):
    """A process killed mid-write (or an older version) left a piece of a line at the end of the
    file. The next event appended goes on a line of its own; the replay skips the piece, counts
    it, and delivers everything else."""
    spill = tmp_path / "s.jsonl"
    before, after = f"sess_torn_a_{uuid.uuid4().hex}", f"sess_torn_b_{uuid.uuid4().hex}"
    spill.write_bytes(b"".join(aop_line(before, n) + b"\n" for n in (1, 2, 3)) + aop_line(before, 4)[:60])
    down = AopClient("agent", url=unreachable(), session_id=after, spill_path=spill, max_retries=1)
    down.close(1)
    down.thought("after the crash")
    assert down.stats["spilled"] == 1
    up = AopClient("agent", url=open_server.url, spill_path=spill)
    assert up.flush(10)
    up.close(5)
    assert [e["sequence"] for e in stored(open_server, before)["events"]] == [1, 2, 3]
    assert [e["payload"]["content"] for e in stored(open_server, after)["events"]] == ["after the crash"]
    assert up.stats["replayed"] == 4 and up.stats["spill_malformed"] == 1


def test_a_malformed_line_is_counted_once_when_the_replay_is_tried_again(tmp_path, caplog):
    """The first replay fails (503), so the claim is read again from the start: the malformed
    line in it is skipped both times, but is one line, counted and logged once."""
    spill = tmp_path / "s.jsonl"
    session = f"sess_malformed_{uuid.uuid4().hex}"
    good = [aop_line(session, n) for n in range(1, 7)]
    spill.write_bytes(b"\n".join([*good[:3], b'{"spec": "aop/1.0", "sess', *good[3:]]) + b"\n")
    with FakeCollector(lambda n, body: answer(503 if n == 1 else 200), "127.0.0.71") as fake:
        t = Transport(fake.url, spill_path=spill, max_retries=1, backoff_base=0.01, flush_interval=0.01)
        t.flush(10)  # returns after the failed attempt
        assert t.flush(10)
        assert wait_for(lambda: t.stats["replayed"] == 6)
        t.close(2)
    assert len(fake.bodies) == 2 and [e["sequence"] for e in fake.events()[6:]] == list(range(1, 7))
    assert t.stats["spill_malformed"] == 1
    assert len([r for r in caplog.records if "malformed line" in r.getMessage()]) == 1
    assert not spill.exists()
