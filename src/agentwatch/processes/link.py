"""A server process's end of the relay (the lifecycle component ``siblings``).

Inert unless the process was started by ``agentwatch serve`` with ``processes`` above 1
(the parent names the relay's socket in ``AGENTWATCH_RELAY_SOCKET``). Then it tells the
relay how many live clients this process has, sends what the hub publishes while another
process has clients, and publishes here what the others send. Every second it reports the
events per second this process commits, and the pipeline's ``events_per_second`` becomes the
relay's sum over all of them. A lost connection to the relay is
retried every second; meanwhile this process's clients see only its own items, and its
figures are its own. A process whose parent is gone (killed without the chance to stop
its processes) stops itself, as SIGTERM would stop it.

On a scale-out node (``pipeline.role`` ``api`` or ``worker``) live items already reach every
API process through NATS: the link only sums the figures there, and tells the relay it has
no clients (a worker's fan-out to NATS is a hub subscriber, and passing it the others' items
would send them to NATS twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import time
from typing import Any

import orjson
import structlog

from agentwatch.events.model import Event
from agentwatch.events.transfer import as_dict, from_dict
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
RELAY_ENV = "AGENTWATCH_RELAY_SOCKET"
RETRY_S = 1.0
RATE_STALE_S = 3 * RATE_EVERY_S  # an older sum is no longer the server's


class SiblingLink:
    def __init__(self, aw: Any) -> None:
        self.aw = aw
        self.path = os.environ.get(RELAY_ENV) or None
        self.joins_live = aw.settings.pipeline.role == "standalone"
        self.connected = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self._server_rate: tuple[float, float] | None = None  # (events/s, when it came)
        self._writer: asyncio.StreamWriter | None = None
        # the server's parent, as it started this process (a parent killed before this line ran
        # would make os.getppid() already name another)
        parent = multiprocessing.parent_process()
        self._parent = parent.pid if parent is not None else None
        self._task: asyncio.Task[None] | None = None

    def health(self) -> dict[str, Any]:
        """This process (``pid``), how many the server has, and its live items sent to and
        received from the others (``dropped``: not sent, the relay being behind)."""
        doc: dict[str, Any] = {"pid": os.getpid(), "count": self.aw.settings.processes}
        if self.path is not None:
            doc.update(
                relay="connected" if self.connected else "disconnected",
                sent=self.sent,
                received=self.received,
                dropped=self.dropped,
            )
        return doc

    async def start(self) -> None:
        if self.path is not None:
            self._task = asyncio.create_task(self._run(), name="agentwatch-siblings")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        hub = self.aw.hub
        while True:
            if self._parent is not None and os.getppid() != self._parent:
                log.warning("processes.parent_gone", parent=self._parent)
                os.kill(os.getpid(), signal.SIGTERM)
                return
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                await asyncio.sleep(RETRY_S)
                continue
            self._writer, self.connected = writer, True
            hub.on_subscribers = self._subscribers_changed
            self._subscribers_changed(hub.subscribers)
            self.aw.pipeline.rate_source = self._server_events_per_second
            reporter = asyncio.create_task(self._report_rate(writer))
            try:
                await self._receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                log.warning("processes.relay_lost")
            except (FrameError, ValueError) as exc:
                log.warning("processes.relay_bad_frame", error=str(exc)[:200])
            finally:
                reporter.cancel()
                self.aw.pipeline.rate_source = None
                self._server_rate = None
                hub.mirror = hub.on_subscribers = None
                self._writer, self.connected = None, False
                writer.close()
            await asyncio.sleep(RETRY_S)

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        hub = self.aw.hub
        while True:
            kind, payload = await read_frame(reader)
            if kind == WANTED:
                hub.mirror = self._mirror if payload == b"1" and self.joins_live else None
            elif kind == PUBLISHED:
                doc = orjson.loads(payload)
                channel, item = doc["channel"], doc["item"]
                self.received += 1
                hub.publish(channel, from_dict(item) if channel == "event" else item, mirror=False, sibling=True)
            elif kind == TOTAL_RATE:
                self._server_rate = (parse_rate(payload), time.monotonic())

    async def _report_rate(self, writer: asyncio.StreamWriter) -> None:
        """Every second: this process's rate to the relay, and its gauges to the metrics files
        every process's ``/metrics`` reads (see :mod:`agentwatch.pipeline.metrics`)."""
        while not writer.is_closing():
            send(writer, frame(RATE, repr(self.aw.pipeline.local_events_per_second()).encode()))
            self.aw.metrics.set_gauges(self.aw.pipeline.pending, self.aw.hub.subscribers)
            await asyncio.sleep(RATE_EVERY_S)

    def _server_events_per_second(self) -> float | None:
        if self._server_rate is None or time.monotonic() - self._server_rate[1] > RATE_STALE_S:
            return None
        return self._server_rate[0]

    def _subscribers_changed(self, count: int) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(SUBSCRIBERS, str(count if self.joins_live else 0).encode()))

    def _mirror(self, channel: str, item: Any) -> None:
        writer = self._writer
        if writer is None:
            return
        payload = as_dict(item) if isinstance(item, Event) else item
        if send(writer, frame(PUBLISHED, orjson.dumps({"channel": channel, "item": payload}))):
            self.sent += 1
        else:
            self.dropped += 1
            self.aw.metrics.live_dropped.inc()
