"""The relay in the parent process: joins the live hubs of a server's processes.

Each process connects to the relay's Unix socket (in a directory only its user can
enter) and tells it how many live clients it has. The relay tells every process whether
any *other* process has clients; only then does that process send what its hub
publishes, and the relay passes each item to the other processes that have clients.
Without live clients anywhere, nothing crosses between processes. Every second each
process reports the events per second it commits, and the relay answers every process with
their sum (what ``/api/stats`` and ``/ws/stats`` show).

It runs an event loop of its own on a thread of the parent, which otherwise only
watches its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

import structlog

from agentwatch.processes.frames import (
    PUBLISHED,
    RATE,
    RATE_EVERY_S,
    SUBSCRIBERS,
    TOTAL_RATE,
    WANTED,
    FrameError,
    frame,
    parse_rate,
    read_frame,
    send,
)

log = structlog.get_logger("agentwatch.processes")
READY_S = 10.0


@dataclass(eq=False)
class _Peer:
    writer: asyncio.StreamWriter
    subscribers: int = 0
    wanted: bool = False
    rate: float = 0.0


class Relay:
    def __init__(self, path: str) -> None:
        self.path = path
        self.peers: set[_Peer] = set()
        self.forwarded = 0
        self.dropped = 0  # items not passed to a process that was behind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="agentwatch-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(READY_S) or self._failed is not None:
            raise RuntimeError(f"the live relay could not listen on {self.path}: {self._failed}")

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(READY_S)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            self._failed = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_unix_server(self._peer, path=self.path)
        self._ready.set()
        async with server:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RATE_EVERY_S)
                if self._stopping.is_set():
                    break
                self._tell_total_rate()
        for peer in list(self.peers):
            peer.writer.close()

    async def _peer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _Peer(writer)
        self.peers.add(peer)
        try:
            while True:
                kind, payload = await read_frame(reader)
                if kind == SUBSCRIBERS:
                    peer.subscribers = max(0, int(payload))
                    self._tell_wanted()
                elif kind == PUBLISHED:
                    self._forward(peer, frame(PUBLISHED, payload))
                elif kind == RATE:
                    peer.rate = parse_rate(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (FrameError, ValueError) as exc:
            log.warning("processes.relay_bad_frame", error=str(exc)[:200])
        finally:
            self.peers.discard(peer)
            writer.close()
            self._tell_wanted()

    def _forward(self, source: _Peer, data: bytes) -> None:
        for peer in self.peers:
            if peer is source or not peer.subscribers:
                continue
            if send(peer.writer, data):
                self.forwarded += 1
            else:
                self.dropped += 1

    def _tell_total_rate(self) -> None:
        data = frame(TOTAL_RATE, repr(sum(p.rate for p in self.peers)).encode())
        for peer in self.peers:
            send(peer.writer, data)

    def _tell_wanted(self) -> None:
        total = sum(p.subscribers for p in self.peers)
        for peer in self.peers:
            wanted = total - peer.subscribers > 0
            if wanted != peer.wanted:
                peer.wanted = wanted
                if not peer.writer.is_closing():  # a few bytes: sent even to a peer that is behind
                    peer.writer.write(frame(WANTED, b"1" if wanted else b"0"))
