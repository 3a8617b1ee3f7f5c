"""The alert model: deterministic ids, severity scale, JSON shape."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from typing import Any, Literal, get_args

from agentwatch.events.model import iso

ALERT_NS = uuid.UUID("3c3e9f3a-8f7e-4d51-a8f6-0f3f2b7d9e55")
ALERT_TYPES = (
    "sigma",
    "atr",
    "builtin",
    "correlation",
    "ml",
    "ueba",
    "ioc",
    "discovery",
    "guard",
    "honeytoken",
    "hunt",
    "external",
)
Status = Literal["open", "acknowledged", "closed"]
STATUSES: tuple[str, ...] = get_args(Status)
MAX_EVENT_IDS = 100
# An alert that keeps repeating gathers the entities and tags of every repeat: bounded, the
# first ones kept (a rule firing on every request must not grow its alert without end).
MAX_ENTITIES = 64
MAX_TAGS = 64
SIMULATED_TAG = "simulated"  # an alert raised on purple-team events alone (events.model.SIMULATED_FORMAT)
MAX_ASSIGNEE = 128


def severity_label(severity: int) -> str:
    """0-10 scale to a word: 0-1 info, 2-3 low, 4-6 medium, 7-8 high, 9-10 critical."""
    if severity >= 9:
        return "critical"
    if severity >= 7:
        return "high"
    if severity >= 4:
        return "medium"
    if severity >= 2:
        return "low"
    return "info"


SEVERITY_WORDS = {"info": 1, "informational": 1, "low": 3, "medium": 5, "warning": 5, "high": 7, "critical": 9}


def dedup_hash(alert_type: str, rule_id: str, key: str) -> str:
    return hashlib.sha256(f"{alert_type}\x1f{rule_id}\x1f{key}".encode()).hexdigest()[:64]


def alert_id(dedup: str, opening_event_id: str) -> str:
    """Same rule, same dedup key, same opening event: same id, on every replay."""
    return str(uuid.uuid5(ALERT_NS, f"{dedup}:{opening_event_id}"))


def to_json(row: dict[str, Any], body: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "detector": row["detector"],
        "rule_id": row["rule_id"],
        "title": row["title"],
        "message": row["message"],
        "severity": row["severity"],
        "severity_label": severity_label(row["severity"]),
        "status": row["status"],
        "assignee": row.get("assignee"),
        "count": row["count"],
        "first_seen": iso(row["first_seen"]),
        "last_seen": iso(row["last_seen"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "session_id": row["session_id"],
        "tags": tags,
        "entities": body.get("entities", []),
        "event_ids": body.get("event_ids", []),
        "details": body.get("details", {}),
    }


def merge_entities(
    entities: list[dict[str, str]], entity_ids: str, more: Iterable[dict[str, str]]
) -> tuple[list[dict[str, str]], str]:
    """``entities`` (an alert's body) and ``entity_ids`` (its searchable column, ids joined by
    spaces) with the entities of ``more`` not already there added, while fewer than
    :data:`MAX_ENTITIES` are shown; an entity added is searchable too."""
    shown = list(entities)
    seen = {e.get("id") for e in shown}
    ids = entity_ids.split()
    known = set(ids)
    for ent in more:
        if len(shown) >= MAX_ENTITIES:
            break
        if ent["id"] in seen:
            continue
        shown.append(ent)
        seen.add(ent["id"])
        if ent["id"] not in known:
            ids.append(ent["id"])
            known.add(ent["id"])
    return shown, " ".join(ids)


def merge_tags(tags: list[str], more: Iterable[str]) -> list[str]:
    """``tags`` with those of ``more`` not already there added, up to :data:`MAX_TAGS`."""
    out = list(dict.fromkeys(tags))
    for tag in more:
        if len(out) >= MAX_TAGS:
            break
        if tag not in out:
            out.append(tag)
    return out
