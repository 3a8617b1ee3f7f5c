"""Defects found in a hunt over the SDK's spill appends, fork handling and exit hooks."""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid

import orjson
import pytest

from agentwatch.sdk import AopClient
from tests.sdk.test_sdk_hunt import stored, unreachable, wait_for
from tests.sdk.test_sdk_robustness import aop_line

fcntl = pytest.importorskip("fcntl")


def test_a_filesystem_without_flock_still_takes_the_spill_file(open_server, tmp_path, monkeypatch, caplog):
    """Some filesystems (NFS without a lock daemon, some FUSE and SMB mounts) refuse ``flock``
    (ENOLCK, EOPNOTSUPP). The lock only keeps two processes' appends apart; refusing the append
    because of it lost every event the spill file was there to keep. (``fcntl.flock`` is the
    operating system's call, made to fail as such a filesystem fails it.)"""
    real = fcntl.flock

    def no_locks_here(fd, operation):
        if operation & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")
        return real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks_here)
    spill = tmp_path / "s.jsonl"
    session = f"sess_nolock_{uuid.uuid4().hex}"
    down = AopClient("nolock", url=unreachable(), session_id=session, spill_path=spill, max_retries=1)
    down.close(1)  # from now on each report is appended to the spill file as it is made
    for i in range(3):
        down.thought(f"step {i}")
    assert (down.stats["spilled"], down.stats["dropped"], down.stats["spill_failed"]) == (3, 0, 0)
    assert [orjson.loads(line)["payload"]["content"] for line in spill.read_bytes().splitlines()] == [
        "step 0",
        "step 1",
        "step 2",
    ]
    warned = [r for r in caplog.records if "lock" in r.getMessage() and str(spill) in r.getMessage()]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]  # said once, naming the file
    monkeypatch.undo()
    up = AopClient("nolock", url=open_server.url, spill_path=spill)
    assert up.flush(10)
    up.close(5)
    assert [e["payload"]["content"] for e in stored(open_server, session)["events"]] == ["step 0", "step 1", "step 2"]


def test_an_append_caught_by_a_replay_claiming_the_file_is_not_lost(open_server, tmp_path):
    """An append opens the spill file, then waits for the lock while another process appends
    (this test holds the lock, as that process). Meanwhile a replay claims the file (renames it),
    reads it and deletes it. The waiting append then wrote into the claim already deleted: the
    event was counted as spilled and never delivered. It must land in a file still to be
    replayed, and the claim must not be read while an append into it is under way."""
    spill = tmp_path / "s.jsonl"
    session = f"sess_claimrace_{uuid.uuid4().hex}"
    down = AopClient("race", url=unreachable(), session_id=session, spill_path=spill, max_retries=1)
    down.close(1)  # from now on each report is appended to the spill file as it is made
    for i in range(3):
        down.thought(f"before {i}")
    other = os.open(spill, os.O_RDWR)  # "another process", in the middle of its append
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        waiting = threading.Thread(target=down.thought, args=("caught",))
        waiting.start()  # opens the spill file, then waits for the lock
        time.sleep(0.3)
        assert waiting.is_alive()
        up = AopClient("race", url=open_server.url, spill_path=spill)  # its sender replays the file
        assert wait_for(lambda: not spill.exists(), 10)  # claimed
        wait_for(lambda: not list(tmp_path.glob("*.replay")), 3)  # (read and deleted, before the fix)
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    waiting.join(10)
    assert down.stats["spilled"] == 4 and down.stats["dropped"] == 0
    assert up.flush(10)

    def contents() -> list[str]:
        return [e["payload"]["content"] for e in stored(open_server, session)["events"]]

    wait_for(lambda: len(contents()) == 4, 10)
    up.close(5)
    assert contents() == ["before 0", "before 1", "before 2", "caught"]


def test_a_claim_is_read_only_once_an_append_under_way_into_it_has_ended(open_server, tmp_path):
    """Another process holds the lock and is appending (this test, as that process) when a
    replay claims the file. The replay must wait for that append to end before it reads the
    claim: read at once, the claim was deleted without the line written into it right after."""
    spill = tmp_path / "s.jsonl"
    session = f"sess_claimwait_{uuid.uuid4().hex}"
    down = AopClient("race", url=unreachable(), session_id=session, spill_path=spill, max_retries=1)
    down.close(1)
    down.thought("before")
    other = os.open(spill, os.O_RDWR | os.O_APPEND)
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        up = AopClient("race", url=open_server.url, spill_path=spill)  # its sender claims the file
        assert wait_for(lambda: not spill.exists(), 10)
        wait_for(lambda: not list(tmp_path.glob("*.replay")), 3)  # (read and deleted, before the fix)
        os.write(other, aop_line(session, 2) + b"\n")  # the end of "its" append
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    assert up.flush(10)

    def contents() -> list[str]:
        return [e["payload"]["content"] for e in stored(open_server, session)["events"]]

    wait_for(lambda: len(contents()) == 2, 10)
    up.close(5)
    assert contents() == ["before", "step 2"]
