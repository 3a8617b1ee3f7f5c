"""The canonical Event: an OISP v0.1 envelope plus what the other sources need.

``body`` is the envelope exactly as the source sent it (with ``event_id``,
``ts`` and the other required envelope fields filled in by the server when they
were absent), so an OISP event round-trips unchanged. Everything the server
derives (entities, receive time, source format) lives beside the body, never
inside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

# The source format of the events the purple team makes (``agentwatch.purple``): no intake of
# outside data writes it. Alerts raised on such events alone are tagged ``simulated`` and go to
# no alert listener (outputs, playbooks).
SIMULATED_FORMAT = "purple"


class EventError(ValueError):
    """An event broke a rule; ``field`` names where, ``rule`` says which."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


# Token counts, costs and durations above this are not real measurements: intake refuses them
# (AOP) or totals leave them out (OISP stats), so sums stay inside a signed 64-bit integer.
MAX_QUANTITY = 1e15
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what an integer column of either store holds
# Identifiers (event, session ids) hold none: they are keys in headers, file names and indexes.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def storable(body: dict[str, Any]) -> bytes:
    """``body`` serialised as it will be stored; raises :class:`EventError` when it cannot be.

    A JSON parser takes documents nested deeper, and integers larger, than the store's
    serialiser does: such an event must be refused on its own at intake, not fail the
    commit it would share with other clients' events.
    """
    try:
        return orjson.dumps(body)
    except TypeError as exc:
        text = str(exc)
        if "ecursion" in text:
            raise EventError("event", "nested deeper than 255 levels") from None
        if "64-bit" in text:
            raise EventError("event", "holds an integer outside the signed 64-bit range") from None
        raise EventError("event", f"cannot be stored as JSON ({text[:200]})") from None


def int64(v: Any) -> int | None:
    """An integer column's value: None unless an int both stores can hold (the body keeps the original).

    JSON allows any integer; SQLite and PostgreSQL BIGINT hold signed 64 bits, and one value
    past that would fail the whole commit.
    """
    return v if isinstance(v, int) and not isinstance(v, bool) and INT64_MIN <= v <= INT64_MAX else None


@dataclass(slots=True)
class Event:
    body: dict[str, Any]
    event_id: str
    event_type: str
    ts: float  # event time, epoch seconds
    received_at: float  # server receive time, epoch seconds
    source_format: str = "oisp"
    session_id: str | None = None
    parent_session_id: str | None = None
    sequence: int | None = None
    agent: str | None = None
    severity: int = 0
    entities: list[dict[str, str]] = field(default_factory=list)
    trace_id: str | None = None  # assigned by the trace stage
    raw: bytes | None = None  # the original wire form when it differs from body (AOP export)
    body_json: bytes | None = None  # ``body`` serialised, when a codec already did it (see ``storable``)
    # ``body["data"]`` and ``body["process"]``, or {} where the body has no such object. Taken
    # once: the pipeline's stages, store and detectors read them a dozen times per event, and
    # nothing changes a body once its Event exists.
    data: dict[str, Any] = field(init=False, repr=False, compare=False)
    process: dict[str, Any] = field(init=False, repr=False, compare=False)
    # ``body["host"]["hostname"]`` when it is text, and ``process["pid"]`` when it is an integer
    # both stores can hold (``int64``), else None: the key of the event's process row and
    # trace, read by the stages, the store and the detectors.
    hostname: str | None = field(init=False, repr=False, compare=False)
    pid: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        body = self.body
        d = body.get("data")
        self.data = d if isinstance(d, dict) else {}
        p = body.get("process")
        p = self.process = p if isinstance(p, dict) else {}
        h = body.get("host")
        h = h.get("hostname") if isinstance(h, dict) else None
        self.hostname = h if isinstance(h, str) else None
        self.pid = int64(p.get("pid"))

    def to_json(self) -> bytes:
        return self.body_json if self.body_json is not None else orjson.dumps(self.body)

    def summary(self) -> dict[str, Any]:
        """The body plus the derived fields, for APIs that show both."""
        return {
            **self.body,
            "received_at": iso(self.received_at),
            "source_format": self.source_format,
            "severity": self.severity,
            "entities": self.entities,
        }


# The sort key of events in event time (a C getter: sorting a batch calls it once per event).
BY_TIME = attrgetter("ts")


def iso(epoch: float) -> str:
    """RFC 3339 in UTC with ``Z``; microseconds only when there are any (as ``isoformat``).
    orjson writes it: half the cost of ``isoformat`` with a time zone."""
    return orjson.dumps(datetime.fromtimestamp(epoch, UTC), option=orjson.OPT_UTC_Z)[1:-1].decode()


# RFC 3339 (``T``, ``t`` or a space between date and time), with what its parser also takes and
# the API documents: no offset (UTC), minutes without seconds, a bare date. ``fromisoformat``
# alone takes much else (ISO week dates, basic forms, a stray character where ``T`` belongs,
# a trailing NUL), which no sender means as a time.
RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"  # the date
    r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?"  # the time, seconds and fraction optional
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?)?"  # the offset, optional: UTC without one
)

# The times ``datetime`` can show in UTC, as epoch seconds: year 1 to the end of year 9999.
FIRST_TS = -62135596800.0
END_TS = 253402300800.0


def parse_ts(value: Any, field: str = "ts") -> float:
    """RFC 3339 / ISO-8601 text -> epoch seconds; naive times are UTC."""
    if not isinstance(value, str):
        raise EventError(field, "must be an RFC 3339 timestamp string")
    if len(value) > 64:
        raise EventError(field, "timestamp longer than 64 characters")
    text = value.strip()
    if RFC3339_RE.fullmatch(text) is None:
        raise EventError(field, f"not an RFC 3339 timestamp: {value!r}")
    if text.endswith("z"):  # ``fromisoformat`` reads "Z" as UTC, not "z"
        text = text[:-1] + "Z"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise EventError(field, f"not an RFC 3339 timestamp: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    epoch = dt.timestamp()
    if not FIRST_TS <= epoch < END_TS:  # rendered again in UTC later (``iso``): it must fit there
        raise EventError(field, f"outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z: {value!r}")
    return epoch
