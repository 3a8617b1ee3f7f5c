"""The relay between a server's processes, driven by peers over its real Unix socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentwatch.app import Agentwatch
from agentwatch.config import Settings
from agentwatch.processes.frames import PUBLISHED, RATE, SUBSCRIBERS, TOTAL_RATE, WANTED, frame, read_frame
from agentwatch.processes.link import RELAY_ENV, SiblingLink
from agentwatch.processes.relay import Relay


async def _next(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next frame other than the relay's rate sum, which comes every second."""
    while True:
        kind, payload = await asyncio.wait_for(read_frame(reader), 5)
        if kind != TOTAL_RATE:
            return kind, payload


async def _nothing_within(reader: asyncio.StreamReader, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(_next(reader), seconds)
    except TimeoutError:
        return True
    return False


async def _total(reader: asyncio.StreamReader, want: float) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        kind, payload = await asyncio.wait_for(read_frame(reader), 5)
        if kind == TOTAL_RATE and float(payload) == want:
            return
        assert asyncio.get_running_loop().time() < deadline, (kind, payload)


@pytest.fixture
def relay(tmp_path: Path):
    r = Relay(str(tmp_path / "relay.sock"))
    r.start()
    yield r
    r.stop()


async def test_items_go_only_where_clients_are(relay: Relay):
    a, b, c = [await asyncio.open_unix_connection(relay.path) for _ in range(3)]
    (ra, wa), (rb, wb), (rc, wc) = a, b, c
    for w in (wa, wb, wc):
        w.write(frame(SUBSCRIBERS, b"0"))
    # nobody has clients: nobody is asked to send
    assert await _nothing_within(ra) and await _nothing_within(rb)
    wc.write(frame(SUBSCRIBERS, b"2"))  # c has two live clients
    assert await _next(ra) == (WANTED, b"1")
    assert await _next(rb) == (WANTED, b"1")
    assert await _nothing_within(rc)  # its own clients are not a reason to send
    wa.write(frame(PUBLISHED, b'{"channel":"alert","item":{"id":"x"}}'))
    assert await _next(rc) == (PUBLISHED, b'{"channel":"alert","item":{"id":"x"}}')
    assert await _nothing_within(rb)  # b has no clients: nothing is passed to it
    wc.write(frame(SUBSCRIBERS, b"0"))
    assert await _next(ra) == (WANTED, b"0")
    assert await _next(rb) == (WANTED, b"0")
    for w in (wa, wb, wc):
        w.close()


async def test_a_peer_that_leaves_no_longer_counts(relay: Relay):
    (ra, wa), (rb, wb) = [await asyncio.open_unix_connection(relay.path) for _ in range(2)]
    wb.write(frame(SUBSCRIBERS, b"1"))
    assert await _next(ra) == (WANTED, b"1")
    wb.close()
    assert await _next(ra) == (WANTED, b"0")
    wa.close()


async def test_a_broken_peer_is_dropped_and_the_others_go_on(relay: Relay):
    (ra, wa), (rb, wb) = [await asyncio.open_unix_connection(relay.path) for _ in range(2)]
    wb.write(frame(SUBSCRIBERS, b"1"))
    assert await _next(ra) == (WANTED, b"1")
    wb.write(b"\x00\x00\x00\x02Zx")  # an unknown kind: the relay closes b
    assert await _next(ra) == (WANTED, b"0")
    assert await asyncio.wait_for(rb.read(), 5) == b""
    wa.close()
    wb.close()


async def test_every_process_hears_the_sum_of_their_rates(relay: Relay):
    (ra, wa), (rb, wb) = [await asyncio.open_unix_connection(relay.path) for _ in range(2)]
    wa.write(frame(RATE, b"10.5"))
    wb.write(frame(RATE, b"4.5"))
    await _total(ra, 15.0)
    await _total(rb, 15.0)
    wa.write(frame(RATE, b"nan"))  # not a rate: that peer is dropped, its figure with it
    assert await asyncio.wait_for(ra.read(), 5) == b""
    await _total(rb, 4.5)
    wa.close()
    wb.close()


@pytest.mark.parametrize("role", ["standalone", "api"])
async def test_a_scale_out_node_takes_no_part_in_the_live_relay(relay: Relay, tmp_path: Path, monkeypatch, role: str):
    """Processes of a scale-out node get live items through NATS: their link sums figures but
    neither sends its hub's items nor asks for the others'. A standalone process does both."""
    monkeypatch.setenv(RELAY_ENV, relay.path)
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'aw.db'}",
        auth={"enabled": False},
        detection={"atr_bundled": False, "pack": False},
        pipeline={"role": role},
        nats_url="nats://127.0.0.1:4222" if role != "standalone" else None,
    )
    aw = Agentwatch(settings)  # not started: only its link runs
    link = SiblingLink(aw)
    await link.start()
    try:
        reader, writer = await asyncio.open_unix_connection(relay.path)
        writer.write(frame(SUBSCRIBERS, b"1"))  # another process with a live client
        deadline = asyncio.get_running_loop().time() + 5
        while not link.connected or len(relay.peers) < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        sub = aw.hub.subscribe({"event"})  # a client (or a worker's fan-out) of the link's process
        await asyncio.sleep(0.5)
        if role == "standalone":
            assert aw.hub.mirror is not None
            assert await _next(reader) == (WANTED, b"1")
        else:
            assert aw.hub.mirror is None
            assert await _nothing_within(reader, 0.5)
        aw.hub.unsubscribe(sub)
        writer.close()
    finally:
        await link.stop()
        aw.engine.dispose()
