"""``/api/v1/ws``: Seerflow's live stream of events and alerts.

Server frames: ``event`` / ``batch`` (events flushed every ``ws_tick_interval_s``,
at most ``ws_batch_max_events`` per batch), ``alert`` / ``alert_batch`` (alerts of
the same flush), ``alert_deleted`` (``alert_id``: an analyst deleted that alert),
``status`` (every ``ws_status_interval_s``, and at once after a drop, with
``dropped``), ``filter_ack`` and ``error``. Client frames:
``{"type": "filter", "min_severity", "source", "entity"}``, validated as a whole
(a bad frame changes nothing) and accepted at most once per
``ws_filter_min_interval_ms``. Each client has its own buffer of
``ws_queue_maxlen`` frames; when it cannot keep up the oldest are dropped and
counted. At most ``ws_max_connections`` clients; the route guard checks Origin.
Alerts and their deletions are sent only to principals that also hold ``alerts:read``;
a deletion passes every filter (the client may have been shown the alert before it filtered).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agentwatch.api.security import require
from agentwatch.api.wsframes import cancel, close_when_refused, receive_text
from agentwatch.detect.queries import entity_ids_for
from agentwatch.events.model import Event
from agentwatch.processes.places import places_of

router = APIRouter(prefix="/api/v1", tags=["live"])

MAX_CLIENT_FRAME = 4096
MAX_SOURCES = 50
FILTER_KEYS = {"type", "min_severity", "source", "entity"}
ALERT_CHANNELS = frozenset({"alert", "alert_deleted"})  # sent in the order published


@dataclass(frozen=True)
class LiveFilter:
    min_severity: int = 0
    sources: frozenset[str] = frozenset()
    entity_ids: frozenset[str] = frozenset()
    spec: dict[str, Any] = field(default_factory=dict, compare=False)

    def __call__(self, channel: str, item: Any) -> bool:
        if channel == "event" and isinstance(item, Event):
            if item.severity < self.min_severity:
                return False
            if self.sources:
                family = item.event_type.split(".", 1)[0]
                if not ({item.source_format, item.event_type, family} & self.sources):
                    return False
            return not self.entity_ids or any(e.get("id") in self.entity_ids for e in item.entities)
        if channel == "alert" and isinstance(item, dict):
            if int(item.get("severity", 0)) < self.min_severity:
                return False
            ents = item.get("entities") or []
            return not self.entity_ids or any(e.get("id") in self.entity_ids for e in ents)
        return False


def parse_filter(raw: str | bytes) -> tuple[LiveFilter | None, str | None]:
    """The new filter, or an error naming the field; nothing is half-applied."""
    if len(raw) > MAX_CLIENT_FRAME:
        return None, f"frame: larger than {MAX_CLIENT_FRAME} bytes"
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, "frame: malformed JSON"
    if not isinstance(msg, dict) or msg.get("type") != "filter":
        return None, "type: must be 'filter'"
    unknown = sorted(set(msg) - FILTER_KEYS)
    if unknown:
        return None, f"{unknown[0]}: unknown filter field"
    sev = msg.get("min_severity", 0)
    if sev is None:
        sev = 0
    if isinstance(sev, bool) or not isinstance(sev, int) or not 0 <= sev <= 10:
        return None, "min_severity: must be an integer from 0 to 10"
    src = msg.get("source")
    if src is None or src == "":  # absent, null or "": no source filter
        src = []
    elif isinstance(src, str):
        src = [src]
    if not isinstance(src, list) or not all(isinstance(s, str) and 0 < len(s) <= 128 for s in src):
        return None, "source: must be a string or a list of strings of 1-128 characters"
    if len(src) > MAX_SOURCES:
        return None, f"source: at most {MAX_SOURCES} sources"
    ent = msg.get("entity")
    if ent is not None and (not isinstance(ent, str) or not 0 < len(ent) <= 512):
        return None, "entity: must be an entity id or value of 1-512 characters"
    spec = {"min_severity": sev, "source": src, "entity": ent}
    ids = frozenset(entity_ids_for(ent)) if ent else frozenset()
    return LiveFilter(sev, frozenset(src), ids, spec), None


def _event_json(e: Event) -> dict[str, Any]:
    return {**e.summary(), "id": e.event_id}


class _Client:
    def __init__(self, ws: WebSocket, aw: Any) -> None:
        self.ws = ws
        self.aw = aw
        self.s = aw.settings.detection
        self.filter = LiveFilter()
        self.filter_at = 0.0
        self.lock = asyncio.Lock()
        self.reported_dropped = 0
        principal = getattr(ws.state, "principal", None)
        self.alerts_allowed = principal is not None and principal.can("alerts:read")
        # alerts only for who may read them; the channel is kept so a re-check can cut them off
        self.sub = aw.hub.subscribe({"event", *ALERT_CHANNELS}, self._predicate, maxlen=self.s.ws_queue_maxlen)

    def _predicate(self, channel: str, item: Any) -> bool:
        if channel in ALERT_CHANNELS and not self.alerts_allowed:
            return False
        if channel == "alert_deleted":
            return True
        return self.filter(channel, item)

    def rechecked(self, principal: Any) -> None:
        """The credential's current rights: a principal that lost ``alerts:read`` gets no more alerts."""
        self.alerts_allowed = principal.can("alerts:read")

    async def send(self, frame: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_bytes(orjson.dumps(frame))

    async def status(self) -> None:
        self.reported_dropped = self.sub.dropped
        await self.send(
            {
                "type": "status",
                "dropped": self.sub.dropped,
                "delivered": self.sub.delivered,
                "queued": len(self.sub.buffer),
                "clients": len(self.ws.app.state.v1_ws_clients),
                "filter": self.filter.spec,
                "pipeline": {"queue_depth": self.aw.pipeline.pending, "committed": self.aw.pipeline.committed_total},
                "ts": time.time(),
            }
        )

    async def pump(self) -> None:
        s = self.s
        next_status = time.monotonic() + s.ws_status_interval_s
        while True:
            timeout = max(0.0, min(s.ws_tick_interval_s, next_status - time.monotonic()))
            items = await self.sub.next_batch(timeout=timeout, limit=s.ws_batch_max_events * 10)
            if items:
                await asyncio.sleep(0)  # let a burst finish before the flush
            events = [i for _seq, ch, i in items if ch == "event" and self.filter(ch, i)]
            about_alerts = [(ch, i) for _seq, ch, i in items if ch in ALERT_CHANNELS and self._predicate(ch, i)]
            if len(events) == 1:
                await self.send({"type": "event", "data": _event_json(events[0])})
            else:
                for k in range(0, len(events), s.ws_batch_max_events):
                    chunk = events[k : k + s.ws_batch_max_events]
                    await self.send({"type": "batch", "count": len(chunk), "events": [_event_json(e) for e in chunk]})
            await self.send_alerts(about_alerts)
            if self.sub.dropped != self.reported_dropped or time.monotonic() >= next_status:
                await self.status()
                next_status = time.monotonic() + s.ws_status_interval_s

    async def send_alerts(self, items: list[tuple[str, Any]]) -> None:
        """Alerts and deletions in the order published (an alert repeated just before its
        deletion must not come after it); each run of alerts goes as one frame."""
        run: list[dict[str, Any]] = []
        for channel, item in items:
            if channel == "alert":
                run.append(item)
                continue
            await self._send_alert_run(run)
            run = []
            await self.send({"type": "alert_deleted", "alert_id": item["alert_id"]})
        await self._send_alert_run(run)

    async def _send_alert_run(self, alerts: list[dict[str, Any]]) -> None:
        if len(alerts) == 1:
            await self.send({"type": "alert", "data": alerts[0]})
        elif alerts:
            await self.send({"type": "alert_batch", "count": len(alerts), "alerts": alerts})

    async def on_frame(self, raw: str) -> None:
        new, error = parse_filter(raw)
        if error is not None:
            await self.send({"type": "error", "error": {"code": "INVALID_REQUEST", "message": error}})
            return
        now = time.monotonic()
        wait_ms = self.s.ws_filter_min_interval_ms - (now - self.filter_at) * 1000
        if self.filter_at and wait_ms > 0:
            await self.send(
                {
                    "type": "error",
                    "error": {
                        "code": "RATE_LIMITED",
                        "message": f"filter: at most one filter every {self.s.ws_filter_min_interval_ms} ms",
                        "details": {"retry_after_ms": int(wait_ms) + 1},
                    },
                }
            )
            return
        assert new is not None
        self.filter = new
        self.filter_at = now
        await self.send({"type": "filter_ack", "filter": new.spec})


@router.websocket("/ws", dependencies=[require("events:read")])
async def live(ws: WebSocket) -> None:
    aw = ws.app.state.aw
    clients: set[Any] | None = getattr(ws.app.state, "v1_ws_clients", None)
    if clients is None:
        clients = ws.app.state.v1_ws_clients = set()
    await ws.accept()
    place = places_of(aw, "v1_ws", aw.settings.detection.ws_max_connections).take()  # in the whole server
    if place is None:
        await ws.close(code=1013, reason="too many live clients")
        return
    client = _Client(ws, aw)
    clients.add(client)
    pump = asyncio.create_task(client.pump())
    watch = asyncio.create_task(close_when_refused(ws, "events:read", stop=pump, on_check=client.rechecked))
    try:
        await client.status()
        while True:
            raw = await receive_text(ws)
            await client.on_frame(raw)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        place.release()
        clients.discard(client)
        await cancel(watch)
        await cancel(pump)
        aw.hub.unsubscribe(client.sub)
