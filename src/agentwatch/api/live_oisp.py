"""OISP live streams: ``/ws/events`` (with ``subscribe`` filters) and ``/ws/stats``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from agentwatch.api.security import require
from agentwatch.api.wsframes import cancel, close_when_refused, receive_text
from agentwatch.events.model import Event
from agentwatch.processes.places import places_of
from agentwatch.store import counters
from agentwatch.store.processes import active_count

router = APIRouter(tags=["oisp"])

MAX_CLIENT_FRAME = 64 * 1024
MAX_TYPES = 100
AI_CALLS = (("event_type", "ai.request"), ("event_type", "ai.response"))  # read by key: two rows, not a family


class TypeFilter:
    """Matches events whose type is listed (``ai.*`` matches a whole family)."""

    def __init__(self, event_types: list[str] | None) -> None:
        self.exact = {t for t in event_types or [] if not t.endswith(".*")}
        self.prefixes = tuple(t[:-1] for t in event_types or [] if t.endswith(".*"))
        self.all = not event_types

    def __call__(self, _channel: str, item: Any) -> bool:
        if self.all:
            return True
        t = item.event_type if isinstance(item, Event) else ""
        return t in self.exact or (bool(self.prefixes) and t.startswith(self.prefixes))


def parse_subscribe(raw: str | bytes) -> tuple[list[str] | None, str | None]:
    """Validate a client frame; returns (event_types, error)."""
    if len(raw) > MAX_CLIENT_FRAME:
        return None, f"frame: larger than {MAX_CLIENT_FRAME} bytes"
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, "frame: malformed JSON"
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        return None, "type: must be 'subscribe'"
    extra = sorted(str(k)[:64] for k in set(msg) - {"type", "filter"})
    if extra:
        return None, f"{extra[0]}: unknown field"
    flt = msg.get("filter", {})
    if not isinstance(flt, dict):
        return None, "filter: must be an object"
    unknown = set(flt) - {"event_types"}
    if unknown:
        return None, f"filter.{sorted(unknown)[0]}: unknown filter field"
    types = flt.get("event_types")
    if types is None:
        return [], None
    if not isinstance(types, list) or not all(isinstance(t, str) and 0 < len(t) <= 128 for t in types):
        return None, "filter.event_types: must be a list of event type strings"
    if len(types) > MAX_TYPES:
        return None, f"filter.event_types: at most {MAX_TYPES} types"
    return types, None


async def _pump(ws: WebSocket, sub: Any) -> None:
    while True:
        batch = await sub.next_batch(timeout=None)
        for _seq, _channel, event in batch:
            await ws.send_bytes(orjson.dumps({"type": "event", "data": event.body}))


@router.websocket("/ws/events", dependencies=[require("events:read")])
async def ws_events(ws: WebSocket) -> None:
    aw = ws.app.state.aw
    await ws.accept()  # then closed with 1013 when full: a refused handshake would read as 403
    # this route's own clients, in the whole server (the AOP and scan streams have their own limits)
    place = places_of(aw, "ws_events", aw.settings.live.max_clients).take()
    if place is None:
        await ws.close(code=1013, reason="too many live clients")
        return
    flt = TypeFilter(None)

    def predicate(channel: str, item: Any) -> bool:
        return flt(channel, item)

    sub = aw.hub.subscribe({"event"}, predicate)
    pump = asyncio.create_task(_pump(ws, sub))
    watch = asyncio.create_task(close_when_refused(ws, "events:read", stop=pump))
    try:
        while True:
            raw = await receive_text(ws)
            types, error = parse_subscribe(raw)
            if error is not None:
                await ws.send_json({"type": "error", "error": {"code": "INVALID_REQUEST", "message": error}})
                continue
            flt = TypeFilter(types)
            await ws.send_json({"type": "subscribed", "filter": {"event_types": types or []}})
    except (WebSocketDisconnect, RuntimeError):  # RuntimeError: a reply after the socket was closed
        pass
    finally:
        place.release()
        await cancel(watch)
        await cancel(pump)
        aw.hub.unsubscribe(sub)


def _counts(engine: Any) -> tuple[int, int]:
    """Live processes, and LLM requests still waiting for their response."""
    calls = counters.read(engine, exact=AI_CALLS)
    pending = max(0, int(calls.value(*AI_CALLS[0]) - calls.value(*AI_CALLS[1])))
    return active_count(engine), pending


@router.websocket("/ws/stats", dependencies=[require("events:read")])
async def ws_stats(ws: WebSocket) -> None:
    aw = ws.app.state.aw
    await ws.accept()
    interval = aw.settings.live.stats_interval_ms

    async def _drain_client() -> None:
        while True:
            await receive_text(ws)

    reader = asyncio.create_task(_drain_client())
    watch = asyncio.create_task(close_when_refused(ws, "events:read"))
    try:
        while not reader.done() and not watch.done():
            active, pending = await asyncio.to_thread(_counts, aw.engine)
            await ws.send_json(
                {
                    "type": "stats",
                    "data": {
                        "events_per_second": aw.pipeline.events_per_second(),
                        "active_processes": active,
                        "pending_requests": pending,
                    },
                    "interval_ms": interval,
                }
            )
            await asyncio.wait({reader, watch}, timeout=interval / 1000, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await cancel(watch)
        await cancel(reader)
