"""What the routes show of a baseline, and the checks every UEBA route shares."""

from __future__ import annotations

from typing import Any

from agentwatch.api.errors import InvalidRequest, Unavailable
from agentwatch.entities.search import as_uuid
from agentwatch.events.model import EventError, iso, parse_ts
from agentwatch.ueba.baseline import Baseline
from agentwatch.ueba.settings import UebaSettings

MAX_UUID_TEXT = 45  # the longest form uuid.UUID reads: "urn:uuid:" and 36 characters


def enabled(aw: Any) -> UebaSettings:
    """The settings; a 503 when UEBA is off."""
    s: UebaSettings = aw.settings.ueba
    if not s.enabled:
        raise Unavailable("ueba: UEBA is disabled (ueba.enabled is false)")
    return s


def uuid_of(text: str, field: str) -> str:
    found = as_uuid(text) if len(text) <= MAX_UUID_TEXT else None
    if found is None:
        raise InvalidRequest(f"{field}: must be a UUID")
    return found


def timestamp(text: str | None, field: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_ts(text, field)
    except EventError as exc:
        raise InvalidRequest(str(exc)) from None


def _ranked(table: dict[str, int]) -> list[dict[str, Any]]:
    return [{"value": k, "count": n} for k, n in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))]


def status(b: Baseline, s: UebaSettings) -> str:
    return "active" if b.warmed(s.warmup_events, s.warmup_span_s) else "warming_up"


def warmup(b: Baseline, s: UebaSettings) -> dict[str, Any]:
    return {
        "events": b.event_count,
        "events_needed": s.warmup_events,
        "span_s": round(b.last_seen - b.first_seen, 3),
        "span_needed_s": s.warmup_span_s,
    }


def baseline_json(b: Baseline, s: UebaSettings) -> dict[str, Any]:
    total = b.event_count
    return {
        "entity": {"id": b.entity_id, "type": b.type, "value": b.value},
        "status": status(b, s),
        "event_count": total,
        "first_seen": iso(b.first_seen) if total else None,
        "last_seen": iso(b.last_seen) if total else None,
        "warmup": warmup(b, s),
        "hour_of_day": {
            "timezone": "UTC",
            "counts": list(b.hours),
            "shares": [round(h / total, 4) if total else 0.0 for h in b.hours],
        },
        "top_sources": _ranked(b.sources),
        "top_templates": _ranked(b.templates),
        "volume": {
            "bucket_s": s.volume_bucket_s,
            "ema": round(b.ema, 3),
            "buckets": b.buckets,
            "current_bucket_start": iso(b.bucket_start) if b.bucket_start is not None else None,
            "current_bucket_count": b.bucket_count,
        },
    }
