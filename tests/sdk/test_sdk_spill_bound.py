"""The spill file is bounded (``spill_max_bytes``): a long outage with a chatty agent fills it,
not the disk. New events that do not fit are dropped and counted; what is already spilled is
never touched, and is delivered once the collector answers."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest

from agentwatch.sdk import AopClient
from agentwatch.sdk.transport import Transport
from tests.sdk.test_sdk_hunt import spilled, stored, unreachable
from tests.sdk.test_sdk_robustness import aop_line


def test_a_full_spill_file_drops_new_events_and_counts_them(tmp_path, caplog):
    """Events reported after close go straight to the spill file, one by one, in order."""
    caplog.set_level(logging.WARNING, logger="agentwatch.sdk")
    spill = tmp_path / "s.jsonl"
    aop = AopClient("chatty", url=unreachable(), spill_path=spill, spill_max_bytes=3000, max_retries=1)
    aop.close(1)
    for i in range(50):
        aop.thought(f"{i:02d} " + "x" * 150)  # about 300 bytes a line
    kept = spilled(spill)
    assert spill.stat().st_size <= 3000
    assert spill.read_bytes().endswith(b"\n")  # whole lines only
    assert 0 < len(kept) < 50
    assert [e["sequence"] for e in kept] == list(range(1, len(kept) + 1))  # the oldest are kept
    assert spill.stat().st_size + len(orjson.dumps(kept[-1])) + 1 > 3000  # the next one did not fit
    lost = 50 - len(kept)
    assert aop.stats["spilled"] == len(kept)
    assert aop.stats["dropped"] == lost and aop.stats["spill_full"] == lost
    warnings = [r.getMessage() for r in caplog.records if "spill_max_bytes" in r.getMessage()]
    assert len(warnings) == 1, warnings  # one warning, not one per event


def test_the_sender_never_writes_past_the_bound(tmp_path):
    """Collector down while the agent reports: the queue overflows, failed batches are spilled,
    and the sender claims the spill file to replay it. The bound holds for all of it together:
    a claim is not room for a new spill file of the same size."""
    spill = tmp_path / "s.jsonl"
    aop = AopClient(
        "chatty",
        url=unreachable(),
        spill_path=spill,
        spill_max_bytes=5000,
        queue_size=5,
        batch_size=5,
        max_retries=1,
        backoff_base=0.01,
        flush_interval=0.01,
    )
    for i in range(200):
        aop.thought(f"{i:03d} " + "y" * 150)
    assert aop.flush(10)
    aop.close(2)
    files = list(tmp_path.iterdir())  # the spill file, and the claim the sender was replaying
    kept = [e for path in files for e in spilled(path)]
    assert sum(path.stat().st_size for path in files) <= 5000
    assert len({e["sequence"] for e in kept}) == len(kept) == aop.stats["spilled"]
    assert aop.stats["spilled"] + aop.stats["dropped"] == 200
    assert aop.stats["spill_full"] == aop.stats["dropped"] > 0


def test_events_already_spilled_are_never_lost_to_the_bound(open_server, tmp_path):
    """A spill file over the bound (left by an earlier run, or a bound lowered since) is kept
    whole, and replayed in full once the collector answers."""
    spill = tmp_path / "s.jsonl"
    session = f"sess_bound_{uuid.uuid4().hex}"
    before = b"".join(aop_line(session, n) + b"\n" for n in range(1, 21))
    spill.write_bytes(before)
    down = AopClient("agent", url=unreachable(), spill_path=spill, spill_max_bytes=len(before) // 2, max_retries=1)
    down.thought("no room for this one")
    down.close(2)
    assert spill.read_bytes() == before
    assert down.stats["spill_full"] == 1
    up = AopClient("agent", url=open_server.url, spill_path=spill, spill_max_bytes=len(before) // 2)
    assert up.flush(10)
    up.close(5)
    assert [e["sequence"] for e in stored(open_server, session)["events"]] == list(range(1, 21))
    assert up.stats["replayed"] == 20
    assert not spill.exists()


def test_the_default_bound_is_64_mib(tmp_path):
    t = Transport(unreachable(), spill_path=tmp_path / "s.jsonl")
    t.close(1)
    assert t.spill_max_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize("value", [0, -1, 1.5, "64MiB", True, None])
def test_an_unusable_bound_is_refused_by_name(tmp_path, value):
    with pytest.raises(ValueError, match="^spill_max_bytes: "):
        AopClient("agent", url=unreachable(), spill_path=tmp_path / "s.jsonl", spill_max_bytes=value)
