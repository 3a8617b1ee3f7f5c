"""Scale-out over NATS JetStream: API nodes publish, worker nodes commit.

On an API node (``pipeline.role = "api"``) the pipeline hands accepted events to
a JetStream stream and answers the client once JetStream has acknowledged them
(they are durable there); the message id is the ``event_id``, so JetStream drops
a re-sent event within its duplicate window and the store drops it after that.

On a worker node (``pipeline.role = "worker"``) a durable pull consumer fetches
batches, runs them through the local pipeline (stages, detectors, commit) and
acknowledges each message only after its commit, so a worker that dies mid-batch
leaves the messages for another worker (at-least-once; the store makes it
once). The worker fans committed events and alerts out on a plain NATS subject
that every API node feeds into its own live hub, so live clients see events
whichever node committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import orjson
import structlog
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import NotFoundError

from agentwatch.events.model import Event
from agentwatch.events.transfer import as_dict, from_dict, pack, unpack
from agentwatch.masking import mask_url
from agentwatch.pipeline.pipeline import NotSettled, Outcome

log = structlog.get_logger("agentwatch.bus")

FETCH_TIMEOUT_S = 1.0
FIRST_CONNECT_S = 10.0
SETTLE_POLL_S = 0.05


class NatsBus:
    """The lifecycle component that connects a node to the others."""

    def __init__(self, aw: Any) -> None:
        self.aw = aw
        settings = aw.settings
        self.role = settings.pipeline.role
        self.url = settings.nats_url.get_secret_value() if settings.nats_url else None
        self.stream = settings.pipeline.nats_stream
        self.prefix = settings.pipeline.nats_subject
        self.events_subject = f"{self.prefix}.events"
        self.live_subject = f"{self.prefix}.live"
        self.nc: Any = None
        self.js: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._live_sub: Any = None
        self.published = 0
        self.consumed = 0

    async def start(self) -> None:
        if self.role == "standalone":
            return
        try:
            # Once connected the client reconnects for ever; the first connection gets a deadline,
            # so a node that cannot reach NATS stops with an error instead of hanging in start-up
            # (where it would not even answer SIGTERM).
            self.nc = await asyncio.wait_for(
                nats.connect(
                    self.url, name=f"agentwatch-{self.role}", max_reconnect_attempts=-1, error_cb=self._on_error
                ),
                FIRST_CONNECT_S,
            )
        except TimeoutError:
            raise RuntimeError(
                f"nats_url: no NATS server answered at {mask_url(self.url)} within {FIRST_CONNECT_S:g} s"
            ) from None
        self.js = self.nc.jetstream()
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(
                StreamConfig(name=self.stream, subjects=[self.events_subject], duplicate_window=120.0)
            )
        self.aw.pipeline.settle = self.settled
        if self.role == "api":
            self.aw.pipeline.forwarder = self.publish
            self._live_sub = await self.nc.subscribe(self.live_subject, cb=self._on_live)
        else:
            self._tasks.append(asyncio.create_task(self._consume(), name="agentwatch-bus-consume"))
            self._tasks.append(asyncio.create_task(self._fan_out(), name="agentwatch-bus-fanout"))
        log.info("bus.started", role=self.role, stream=self.stream)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        self.aw.pipeline.forwarder = None
        self.aw.pipeline.settle = None

    @property
    def consumer(self) -> str:
        return f"{self.stream}-workers"

    async def settled(self, timeout_s: float) -> None:
        """Return once the workers have committed every event the stream held at the call.

        Workers acknowledge a message only after its batch is committed, so the consumer's ack
        floor (every message up to it acknowledged) passing the stream's last sequence at the
        call means all of them are stored. Raises NotSettled past ``timeout_s`` (workers down
        or far behind)."""
        last = (await self.js.stream_info(self.stream)).state.last_seq
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                floor = (await self.js.consumer_info(self.stream, self.consumer)).ack_floor.stream_seq
            except NotFoundError:  # no worker has started yet: nothing was committed
                floor = 0
            if floor >= last:
                return
            if asyncio.get_running_loop().time() >= deadline:
                raise NotSettled(
                    f"the workers have not committed the events accepted before this request within "
                    f"{timeout_s:g} s (pipeline.settle_timeout_s; {last - floor} still on their way)"
                )
            await asyncio.sleep(SETTLE_POLL_S)

    async def _on_error(self, exc: Exception) -> None:
        """The client's connection errors, one line each (it retries every few seconds)."""
        log.warning("bus.nats_error", error=f"{type(exc).__name__}: {exc}"[:300])

    # -- API node ---------------------------------------------------------
    async def publish(self, events: list[Event]) -> Outcome:
        acks = await asyncio.gather(
            *(self.js.publish(self.events_subject, pack(e), headers={"Nats-Msg-Id": e.event_id}) for e in events)
        )
        dup = sum(1 for a in acks if a.duplicate)
        self.published += len(events) - dup
        return Outcome(stored=len(events) - dup, duplicates=dup)

    async def _on_live(self, msg: Any) -> None:
        doc = orjson.loads(msg.data)
        # every process of an API node takes these from NATS itself: none is passed to the others
        if doc["channel"] == "event":
            self.aw.hub.publish("event", from_dict(doc["item"]), mirror=False)
        else:
            self.aw.hub.publish(doc["channel"], doc["item"], mirror=False)

    # -- worker node ------------------------------------------------------
    async def _consume(self) -> None:
        settings = self.aw.settings.pipeline
        sub = await self.js.pull_subscribe(
            self.events_subject,
            durable=self.consumer,
            config=ConsumerConfig(ack_wait=60, max_ack_pending=settings.queue_size),
        )
        while True:
            try:
                msgs = await sub.fetch(settings.batch_size, timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            events = [unpack(m.data) for m in msgs]
            try:
                await self.aw.pipeline.submit(events)
            except Exception:
                log.exception("bus.commit_failed", events=len(events))
                for m in msgs:
                    await m.nak(delay=1)
                continue
            for m in msgs:
                await m.ack()
            self.consumed += len(msgs)

    async def _fan_out(self) -> None:
        sub = self.aw.hub.subscribe({"event", "alert"}, maxlen=self.aw.settings.live.client_buffer * 10)
        try:
            while True:
                for _seq, channel, item in await sub.next_batch(timeout=None):
                    payload = as_dict(item) if isinstance(item, Event) else item
                    await self.nc.publish(self.live_subject, orjson.dumps({"channel": channel, "item": payload}))
        finally:
            self.aw.hub.unsubscribe(sub)
