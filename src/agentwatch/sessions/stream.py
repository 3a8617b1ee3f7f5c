"""``GET /stream``: Server-Sent Events in the original collector's framing, plus resume.

Frames::

    data: {"type":"connected","timestamp":...}          first, once
    id: <event_id>
    data: {"kind":"event","data":<the AOP event as sent>}
    data: {"kind":"alert","data":{id, session_id, type, message, severity, created_at}}
    : ping                                               every ping_interval_s

A client that reconnects with ``Last-Event-ID`` first gets the stored events after
that id (and the alerts since), then the live ones. Each client has a bounded
buffer; a client too slow to keep up is cut (the response ends) instead of growing
the server's memory, and can resume with ``Last-Event-ID`` without a gap. Alerts go only
to a client whose credential also grants ``alerts:read``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from starlette.requests import HTTPConnection

from agentwatch.api.sse import data_line
from agentwatch.api.wsframes import RECHECK_S, current_principal
from agentwatch.events.model import Event, iso
from agentwatch.processes.places import Place, Places, places_of
from agentwatch.sessions import queries

log = structlog.get_logger("agentwatch.sessions.stream")


def frame(payload: dict[str, Any] | bytes, event_id: str | None = None) -> bytes:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    head = f"id: {event_id}\n".encode() if event_id else b""
    return head + data_line(data) + b"\n\n"


def event_frame(event_id: str, raw: bytes) -> bytes:
    return frame(b'{"kind":"event","data":' + queries.one_line(raw) + b"}", event_id)


def alert_frame(alert: dict[str, Any]) -> bytes:
    return frame({"kind": "alert", "data": alert})


def hub_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert published on the hub (``alerts.model.to_json``) in the AOP shape."""
    severity = int(alert.get("severity", 0))
    return {
        "id": alert["id"],
        "session_id": alert.get("session_id"),
        "type": str(alert.get("rule_id", "")).removeprefix("aop."),
        "message": alert.get("message", ""),
        "severity": "critical" if severity >= 9 else ("warning" if severity >= 4 else "info"),
        "created_at": alert.get("created_at"),
        "severity_score": severity,
        "count": alert.get("count", 1),
    }


def _can_read_alerts(principal: Any) -> bool:
    return principal is not None and principal.can("alerts:read")


class Predicate:
    """Which hub items one client receives: AOP events, and alerts about a session to a client
    whose credential also grants ``alerts:read`` (``sessions:read`` alone opens the stream)."""

    def __init__(self, session_id: str | None, alerts_allowed: bool = True) -> None:
        self.session_id = session_id
        self.alerts_allowed = alerts_allowed

    def __call__(self, channel: str, item: Any) -> bool:
        if channel == "event":
            if not isinstance(item, Event) or item.source_format != "aop":
                return False
            return self.session_id is None or item.session_id == self.session_id
        if channel == "alert" and self.alerts_allowed and isinstance(item, dict) and item.get("session_id"):
            return self.session_id is None or item["session_id"] == self.session_id
        return False

    async def still_allowed(self, conn: HTTPConnection) -> bool:
        """Whether the request's credential still grants ``sessions:read`` (revoked, expired or
        demoted since the stream began: no, and the stream ends); a credential that lost
        ``alerts:read`` keeps the stream without alerts."""
        principal = await current_principal(conn)
        self.alerts_allowed = _can_read_alerts(principal)
        return principal is not None and principal.can("sessions:read")


def stream_places(aw: Any) -> Places:
    """The ``aop.stream_max_clients`` places of ``/stream``, in the whole server."""
    return places_of(aw, "aop_stream", aw.settings.aop.stream_max_clients)


def open_stream(
    aw: Any, place: Place, *, session_id: str | None, last_event_id: str | None, conn: HTTPConnection | None = None
) -> AsyncIterator[bytes]:
    """The frames of one ``/stream`` client, holding ``place`` (of ``stream_places``) until they
    end. The place is taken when the request is accepted (counting at the stream's first frame
    let a burst of clients all pass the check before any stream had started), and given back
    when the stream ends, or when its generator is dropped without having run (a client gone
    before its first frame). With ``conn`` (the request) the stream ends once its credential no
    longer grants ``sessions:read``."""
    body = sse(aw, place, session_id=session_id, last_event_id=last_event_id, conn=conn)
    weakref.finalize(body, place.release)
    return body


async def sse(
    aw: Any,
    place: Place,
    *,
    session_id: str | None,
    last_event_id: str | None,
    conn: HTTPConnection | None = None,
) -> AsyncIterator[bytes]:
    settings = aw.settings.aop
    principal = getattr(conn.state, "principal", None) if conn is not None else None
    wanted = Predicate(session_id, alerts_allowed=conn is None or _can_read_alerts(principal))
    sub = aw.hub.subscribe({"event", "alert"}, wanted, maxlen=settings.stream_buffer)
    try:
        hello = {"type": "connected", "timestamp": iso(time.time())}
        if session_id:
            hello["session_id"] = session_id
        yield b"retry: 2000\n" + frame(hello)
        sent: set[str] = set()
        if last_event_id:
            replay = await asyncio.to_thread(
                queries.replay_after, aw.engine, last_event_id, session_id, settings.replay_limit
            )
            if replay is None:
                yield frame({"type": "resume_failed", "reason": "Last-Event-ID: unknown event id"})
            else:
                evs, alerts = replay
                for eid, raw in evs:
                    sent.add(eid)
                    yield event_frame(eid, raw)
                for alert in alerts if wanted.alerts_allowed else ():
                    sent.add(alert["id"])
                    yield alert_frame(alert)
        last_ping = time.monotonic()
        interval = settings.ping_interval_s
        next_check = last_ping + RECHECK_S
        while True:
            wait = max(0.0, min(interval - (time.monotonic() - last_ping), next_check - time.monotonic()))
            batch = await sub.next_batch(timeout=wait)
            if conn is not None and time.monotonic() >= next_check:
                if not await wanted.still_allowed(conn):
                    return
                next_check = time.monotonic() + RECHECK_S
            if sub.dropped:
                log.warning("stream.client_cut", dropped=sub.dropped, buffer=settings.stream_buffer)
                return
            if sub.closed:
                return
            out: list[bytes] = []
            for _seq, channel, item in batch:
                if channel == "event":
                    if item.event_id in sent:
                        sent.discard(item.event_id)
                        continue
                    raw = item.raw if item.raw is not None else item.to_json()
                    out.append(event_frame(item.event_id, raw))
                elif wanted.alerts_allowed:  # queued before a re-check took alerts away: dropped
                    out.append(alert_frame(hub_alert(item)))
            if time.monotonic() - last_ping >= interval:
                out.append(b": ping\n\n")
                last_ping = time.monotonic()
            if out:
                yield b"".join(out)
    finally:
        place.release()
        aw.hub.unsubscribe(sub)
