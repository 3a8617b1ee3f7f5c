"""An event as bytes between two agentwatch processes: scale-out nodes over NATS, and the
processes of one server (``processes``) passing live items to each other.

Every field of :class:`Event` travels, so the receiver holds the event the sender committed
(the raw bytes as base64, since JSON cannot carry them)."""

from __future__ import annotations

import base64

import orjson

from agentwatch.events.model import Event


def as_dict(e: Event) -> dict:  # type: ignore[type-arg]
    """The event as a JSON-ready dict (:func:`from_dict` makes it back)."""
    return {
        "body": e.body,
        "event_id": e.event_id,
        "event_type": e.event_type,
        "ts": e.ts,
        "received_at": e.received_at,
        "source_format": e.source_format,
        "session_id": e.session_id,
        "parent_session_id": e.parent_session_id,
        "sequence": e.sequence,
        "agent": e.agent,
        "severity": e.severity,
        "entities": e.entities,
        "trace_id": e.trace_id,
        "raw": base64.b64encode(e.raw).decode() if e.raw is not None else None,
    }


def from_dict(d: dict) -> Event:  # type: ignore[type-arg]
    d = dict(d)
    raw = d.pop("raw")
    return Event(**d, raw=base64.b64decode(raw) if raw is not None else None)


def pack(e: Event) -> bytes:
    return orjson.dumps(as_dict(e))


def unpack(data: bytes) -> Event:
    return from_dict(orjson.loads(data))
