"""The AOP codec: request bytes (one event, a JSON array, or NDJSON) -> canonical Events.

Each AOP event becomes an OISP-style envelope whose ``data`` is the normalized
payload (see :mod:`agentwatch.sessions.wire`); the exact bytes of the event as sent
are kept in ``Event.raw`` so export can give them back unchanged. The ``event_id``
is a UUID5 of ``(session_id, sequence)``, so a resent event is a duplicate the store
ignores: ingest is idempotent per session step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from agentwatch.events.codecs import Decoded, Rejection
from agentwatch.events.codecs.framing import BodyError, check_json_values
from agentwatch.events.ids import name_uuid
from agentwatch.events.model import Event, EventError, storable
from agentwatch.sessions import wire

AOP_NS = uuid.UUID("7d2b6a51-3c0e-4f6a-9e1b-5a8c2d4f7e90")
SOURCE = {"collector": "agentwatch-aop", "capture_method": "sdk"}
CONFIDENCE = {"level": "high", "completeness": "vendor_reported", "reasons": ["agent_self_reported"]}
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_UNPARSED = object()


_NS_BYTES = AOP_NS.bytes


def aop_event_id(session_id: str, sequence: int) -> str:
    """The same session step always gets the same id (idempotent ingest): UUID5 of both."""
    return name_uuid(_NS_BYTES, f"{session_id}\x1f{sequence}")


def _severity(aop_type: str, data: dict[str, Any]) -> int:
    if aop_type == "operation.tool_end" and not data.get("success", True):
        return 3
    if aop_type == "session.ended" and data.get("outcome") in ("failed", "timeout"):
        return 4
    if aop_type == "cognition.uncertainty" or data.get("confidence_level") == "low":
        return 1
    return 0


def to_event(doc: Any, raw: bytes, *, received_at: float, low_confidence_below: float = 0.4) -> Event:
    """One decoded AOP document -> Event; raises EventError naming the bad field."""
    fields, ts = wire.check_envelope(doc)
    data = wire.normalize_payload(fields["type"], doc["payload"], low_confidence_below)
    event_id = aop_event_id(fields["session_id"], fields["sequence"])
    event_type = wire.TYPE_PREFIX + fields["type"]
    attrs = {f"aop.{k}": v for k, v in fields.items() if v is not None}
    body = {
        "oisp_version": "0.1",
        "event_id": event_id,
        "event_type": event_type,
        "ts": fields["timestamp"],
        "source": dict(SOURCE),
        "confidence": {**CONFIDENCE, "reasons": list(CONFIDENCE["reasons"])},
        "data": data,
        "attrs": attrs,
    }
    body_json = storable(body)
    return Event(
        body=body,
        event_id=event_id,
        event_type=event_type,
        ts=ts,
        received_at=received_at,
        source_format="aop",
        session_id=fields["session_id"],
        parent_session_id=fields["parent_session_id"],
        sequence=fields["sequence"],
        agent=fields["agent_id"],
        severity=_severity(fields["type"], data),
        raw=raw,
        body_json=body_json,
    )


def split_raw(body: bytes, *, max_items: int) -> tuple[bool, Iterator[tuple[int, bytes, Any]]]:
    """``(is_batch, items)``: each item's exact bytes (and its value when already parsed).

    The body is one JSON array, one JSON value (possibly spread over lines), or
    NDJSON with one event per line.
    """
    stripped = body.strip()
    if not stripped:
        raise BodyError("body", "is empty")
    check_json_values(stripped)
    if stripped[:1] == b"[":
        try:
            items = _RAW_LIST.decode(stripped)
        except msgspec.DecodeError as exc:
            raise BodyError("body", f"malformed JSON array ({exc})") from None
        except RecursionError:  # the skipped items are walked recursively
            raise BodyError("body", "nested too deeply") from None
        if len(items) > max_items:
            raise BodyError("body", f"more than {max_items} events in one request", status=413)
        return True, ((i, bytes(item), _UNPARSED) for i, item in enumerate(items))
    try:
        single = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    else:
        return False, iter([(0, stripped, single)])
    lines = [line.strip() for line in stripped.split(b"\n")]
    lines = [line for line in lines if line]
    if len(lines) <= 1:
        return False, iter([(0, stripped, _UNPARSED)])
    if len(lines) > max_items:
        raise BodyError("body", f"more than {max_items} events in one request", status=413)
    return True, ((i, line, _UNPARSED) for i, line in enumerate(lines))


@dataclass
class AopCodec:
    """Registered at ``registry.codecs["aop"]``."""

    max_items: int = 1_000
    max_event_bytes: int = 64 * 1024
    low_confidence_below: float = 0.4
    name: str = "aop"
    clock: Callable[[], float] = time.time

    def decode(self, body: bytes, content_type: str = "application/json") -> Decoded:
        decoded, _ = self.decode_items(body)
        return decoded

    def decode_items(self, body: bytes) -> tuple[Decoded, bool]:
        """Decode; also says whether the body was a batch (array / NDJSON) or one event."""
        out = Decoded()
        now = self.clock()
        is_batch, items = split_raw(body, max_items=self.max_items)
        for index, raw, parsed in items:
            if len(raw) > self.max_event_bytes:
                if not is_batch:
                    raise BodyError("body", f"larger than {self.max_event_bytes} bytes", status=413)
                out.rejected.append(Rejection(index, "event", f"larger than {self.max_event_bytes} bytes"))
                continue
            doc = parsed
            if doc is _UNPARSED:
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    out.rejected.append(Rejection(index, "body", f"malformed JSON ({exc})"))
                    continue
            try:
                out.events.append(to_event(doc, raw, received_at=now, low_confidence_below=self.low_confidence_below))
            except EventError as exc:
                out.rejected.append(Rejection(index, exc.field, exc.rule))
        return out, is_batch


def data_validator(aop_type: str) -> Callable[[dict], list[str]]:
    """Validator of the normalized ``data`` of ``aop.<type>`` events (registered at event_types)."""

    def check(data: dict) -> list[str]:
        try:
            wire.normalize_payload(aop_type, data)
        except EventError as exc:
            return [f"data.{exc.field.removeprefix('payload.')}: {exc.rule}"]
        return []

    return check
