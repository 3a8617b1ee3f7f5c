"""The OCSF codec: Open Cybersecurity Schema Framework events -> canonical Events.

A body is one OCSF event, a JSON array of them, or NDJSON (one per line). Each event must
carry ``class_uid`` (an integer) and ``time`` (an integer, milliseconds since the Unix epoch,
as OCSF's ``timestamp_t``); an event missing either, or with a field this codec reads of the
wrong type (``severity_id`` not an integer, ``device`` not an object, ``dst_endpoint.port``
out of range), is refused alone with its index, the OCSF field and the rule.

The envelope comes from OCSF's base attributes: ``metadata.uid`` is the event id (a new ULID
when absent), ``device.hostname`` the host, ``actor.user.name`` the user, the acting process
(``actor.process``, or the target ``process`` of a Process Activity) the process,
``severity_id`` the 0-10 severity, ``metadata.product.name`` the collector. The class gives the
event type and payload (:mod:`agentwatch.events.codecs.ocsf_classes`); the original event is
kept whole under ``ext.ocsf``, so nothing the sender said is lost and rules can match on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentwatch.events.codecs import Decoded, Rejection
from agentwatch.events.codecs import ocsf_fields as f
from agentwatch.events.codecs.framing import split_items
from agentwatch.events.codecs.ocsf_classes import map_class
from agentwatch.events.model import END_TS, FIRST_TS, Event, EventError, iso
from agentwatch.events.normalize import TypeValidators, new_event_id, normalize

MAX_CLASS_UID = 999_999
MAX_ACTIVITY = 65_535
# OCSF severity_id -> agentwatch 0-10: 0 Unknown, 1 Informational, 2 Low, 3 Medium, 4 High,
# 5 Critical, 6 Fatal, 99 Other (as the words of alerts.model.SEVERITY_WORDS)
SEVERITIES = {0: 0, 1: 1, 2: 3, 3: 5, 4: 7, 5: 9, 6: 10, 99: 0}
MAX_PID = 2**32 - 1
CONFIDENCE = {"level": "medium", "completeness": "vendor_reported", "reasons": ["mapped_from_ocsf"]}
MIN_MS, MAX_MS = int(FIRST_TS * 1000), int(END_TS * 1000) - 1
STORED = "as stored (its OISP mapping beside the OCSF original, kept whole)"


def event_time(doc: dict[str, Any]) -> float:
    """OCSF ``time`` (required; integer milliseconds since the epoch) in epoch seconds."""
    if doc.get("time") is None:
        raise EventError("time", "is required (milliseconds since the Unix epoch)")
    ms = f.integer(doc, "time", MIN_MS, MAX_MS)
    return (ms or 0) / 1000


def class_of(doc: dict[str, Any]) -> tuple[int, int]:
    """``class_uid`` (required) and ``activity_id`` (0, Unknown, when absent)."""
    if doc.get("class_uid") is None:
        raise EventError("class_uid", "is required (an OCSF class number such as 1007)")
    class_uid = f.integer(doc, "class_uid", 0, MAX_CLASS_UID)
    activity = f.integer(doc, "activity_id", 0, MAX_ACTIVITY)
    return class_uid or 0, activity or 0


def _process(doc: dict[str, Any], path: str) -> dict[str, Any] | None:
    if f.obj(doc, path) is None:
        return None
    out: dict[str, Any] = {}
    for key, rel, limit in (("name", "name", 1024), ("exe", "file.path", 4096), ("cmdline", "cmd_line", 32768)):
        value = f.text(doc, f"{path}.{rel}", limit)
        if value:
            out[key] = value
    for key, rel in (("pid", "pid"), ("ppid", "parent_process.pid")):
        value = f.integer(doc, f"{path}.{rel}", 0, MAX_PID)
        if value is not None:
            out[key] = value
    return out or None


def envelope(
    doc: dict[str, Any], *, default_id: str | None = None, clamp: Callable[[float], float] | None = None
) -> dict[str, Any]:
    """The OISP envelope of one OCSF event; raises :class:`EventError` naming the OCSF field.

    ``default_id`` is the event id when ``metadata.uid`` gives none (else a new ULID);
    ``clamp`` maps the event's time to the one used (a caller's sane window)."""
    if not isinstance(doc, dict):
        raise EventError("event", "must be a JSON object (an OCSF event)")
    class_uid, activity = class_of(doc)
    seconds = event_time(doc)
    if clamp is not None:
        seconds = clamp(seconds)
    severity_id = f.integer(doc, "severity_id", 0, 99)
    if severity_id is not None and severity_id not in SEVERITIES:
        raise EventError("severity_id", f"must be one of {', '.join(map(str, SEVERITIES))}")
    uid = f.text(doc, "metadata.uid", 128)
    product = f.text(doc, "metadata.product.name", 128)
    event_type, data = map_class(doc, class_uid, activity)
    body: dict[str, Any] = {
        "oisp_version": "0.1",
        "event_id": uid or default_id or new_event_id(),
        "event_type": event_type,
        "ts": iso(seconds),
        "source": {"collector": f"ocsf:{product}" if product else "ocsf", "capture_method": "vendor_api"},
        "confidence": dict(CONFIDENCE),
        "severity": SEVERITIES.get(severity_id or 0, 0),
        "data": data,
        "ext": {"ocsf": doc},
    }
    hostname = f.text(doc, "device.hostname", 255) or f.text(doc, "device.name", 255)
    if hostname:
        body["host"] = {"hostname": hostname}
    user = f.text(doc, "actor.user.name", 256)
    if user:
        body["actor"] = {"user": user}
    process = _process(doc, "process" if class_uid == 1007 else "actor.process")
    if process is not None:
        body["process"] = process
    message = f.free_text(doc, "message", 4096)
    if message:
        body["attrs"] = {"message": message}
    return body


@dataclass
class OcsfCodec:
    """Registered at ``registry.codecs["ocsf"]``."""

    type_validator: TypeValidators
    max_items: int = 10_000
    max_event_bytes: int = 1024 * 1024
    name: str = "ocsf"
    clock: Callable[[], float] = time.time

    def event(self, doc: Any, received_at: float, **kw: Any) -> Event:
        """One OCSF event as a canonical Event (``kw``: see :func:`envelope`)."""
        body = envelope(doc, **kw)
        return normalize(body, type_validator=self.type_validator, source_format="ocsf", received_at=received_at)

    def decode(self, body: bytes, content_type: str = "application/json") -> Decoded:
        """Valid events and per-event rejections; raises BodyError when the body is no JSON at all."""
        out = Decoded()
        now = self.clock()
        for index, item, raw, error in split_items(body, max_items=self.max_items):
            if error is not None:
                out.rejected.append(Rejection(index, "body", error))
                continue
            if raw is not None and len(raw) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "event", f"larger than {self.max_event_bytes} bytes"))
                continue
            try:
                event = self.event(item, now)
            except EventError as exc:
                out.rejected.append(Rejection(index, exc.field, exc.rule))
                continue
            # measured as stored, line or array item alike: the mapping and the original kept
            # whole beside it make the stored event larger than the line that was sent
            if len(event.to_json()) > self.max_event_bytes:
                out.rejected.append(Rejection(index, "event", f"larger than {self.max_event_bytes} bytes {STORED}"))
                continue
            out.events.append(event)
        return out


def generic_data_validator(data: Any) -> list[str]:
    """The payload rule of the ``ocsf.*`` event types: an object (the codec builds it)."""
    return [] if isinstance(data, dict) else ["data: must be an object"]
