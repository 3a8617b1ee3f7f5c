"""Turn one decoded OISP-shaped mapping into a validated canonical :class:`Event`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ulid import ULID

from agentwatch.events import oisp_schema
from agentwatch.events.model import CONTROL_RE, Event, EventError, iso, parse_ts, storable

MAX_TYPE_LEN = 128
# Envelope fields the server may fill when a source leaves them out.
DEFAULT_SOURCE = {"collector": "agentwatch-ingest"}
DEFAULT_CONFIDENCE = {"level": "medium", "completeness": "partial", "reasons": ["server_filled_envelope"]}

IDENTIFIERS = ("event_id", "session_id", "parent_session_id")
TypeValidators = Callable[[str], Callable[[dict], list[str]] | None]


def new_event_id() -> str:
    return str(ULID())


def normalize(
    item: Any,
    *,
    type_validator: TypeValidators,
    source_format: str = "oisp",
    received_at: float | None = None,
    raw: bytes | None = None,
) -> Event:
    """Validate ``item`` and build the Event; raises :class:`EventError` naming the field."""
    if not isinstance(item, dict):
        raise EventError("event", "must be a JSON object")
    now = time.time() if received_at is None else received_at
    body = item
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise EventError("event_type", "is required and must be a non-empty string")
    if len(event_type) > MAX_TYPE_LEN:
        raise EventError("event_type", f"longer than {MAX_TYPE_LEN} characters")
    check_data = type_validator(event_type)
    if check_data is None:
        raise EventError("event_type", f"unknown event type {event_type!r}")

    if "event_id" not in body:
        body["event_id"] = new_event_id()
    if "ts" not in body:
        body["ts"] = iso(now)
    if "oisp_version" not in body:
        body["oisp_version"] = "0.1"
    if "source" not in body:
        body["source"] = dict(DEFAULT_SOURCE)
    if "confidence" not in body:
        body["confidence"] = dict(DEFAULT_CONFIDENCE)

    # An OISP type's check also validates the envelope and its payload together: one call for
    # a valid event. Any other event, or one found invalid, is asked field by field.
    whole = getattr(check_data, "whole", None)
    valid = whole is not None and whole.is_valid(body)
    if not valid:
        errors = oisp_schema.problems(oisp_schema.envelope_validator(), body, "event")
        if errors:
            field, _, rule = errors[0].partition(": ")
            raise EventError(field.removeprefix("event."), rule)
    event_id = body["event_id"]
    if len(event_id) > 128:
        raise EventError("event_id", "longer than 128 characters")
    for key in IDENTIFIERS:
        value = body.get(key)
        # printable ASCII holds no control character: the regex only for the rest
        if isinstance(value, str) and not (value.isascii() and value.isprintable()) and CONTROL_RE.search(value):
            raise EventError(key, "must not contain control characters")
    ts = parse_ts(body["ts"])

    data = body.get("data")
    if data is not None and not valid:
        problems = check_data(data)
        if problems:
            field, _, rule = problems[0].partition(": ")
            raise EventError(field, rule)

    body_json = storable(body)
    return Event(
        body=body,
        event_id=event_id,
        event_type=event_type,
        ts=ts,
        received_at=now,
        source_format=source_format,
        session_id=body.get("session_id"),
        parent_session_id=body.get("parent_session_id"),
        sequence=body.get("sequence"),
        agent=body.get("agent"),
        severity=body.get("severity", 0),
        raw=raw,
        body_json=body_json,
    )


class OispDataCheck:
    """The validator of one OISP event type's ``data`` payload: called with the payload, it
    returns its problems (``["<field path>: <rule broken>"]``, empty when valid). ``whole``
    validates an event of the type, envelope and payload, in one call (``normalize``)."""

    __slots__ = ("compiled", "whole")

    def __init__(self, event_type: str) -> None:
        self.compiled = oisp_schema.data_validator(event_type)
        self.whole = oisp_schema.event_validator(event_type)

    def __call__(self, data: dict) -> list[str]:
        if not isinstance(data, dict):
            return ["data: must be an object"]
        if self.compiled is None:
            return []
        return oisp_schema.problems(self.compiled, data, "data")


def oisp_data_validator(event_type: str) -> Callable[[dict], list[str]]:
    """The validator of one OISP event type's ``data`` payload."""
    return OispDataCheck(event_type)
