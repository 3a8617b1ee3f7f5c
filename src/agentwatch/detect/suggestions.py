"""Rule-suggestion patterns: what analysts confirmed as true positives, grouped for drafting.

A pattern is an alert type, a rule and the kind of an entity the alerts named
(``alert_type:rule_id:entity_type``, the form Seerflow documents; ``none`` when an alert
named no entity). Its evidence is the TP/FP feedback given on those alerts. A pattern is
eligible for drafting a Sigma rule (:mod:`agentwatch.detect.suggestion_draft`) once it has at
least ``detection.rule_suggestion_min_tp`` true positives and more of them than false ones.

Patterns are computed from the newest :data:`MAX_FEEDBACK` verdicts, so the work of a listing
is bounded however much feedback the store holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from agentwatch.alerts.model import ALERT_TYPES
from agentwatch.detect.queries import ENTITY_KINDS
from agentwatch.detect.schema import alert_feedback
from agentwatch.events.model import CONTROL_RE, iso
from agentwatch.store.alerts_schema import alerts

MAX_FEEDBACK = 10_000  # newest verdicts read to find patterns
MAX_ALERT_IDS = 20  # alert ids shown per pattern
ID_CHUNK = 500
NO_ENTITY = "none"
ENTITY_TYPES = (*ENTITY_KINDS, NO_ENTITY)
MAX_KEY = 32 + 1 + 256 + 1 + 16


class BadPatternKey(ValueError):
    """A pattern key that no pattern can have; the message names the rule it breaks."""


def pattern_key(alert_type: str, rule_id: str, entity_type: str) -> str:
    return f"{alert_type}:{rule_id}:{entity_type}"


def parse_pattern_key(key: str) -> tuple[str, str, str]:
    """``alert_type:rule_id:entity_type`` -> its parts. Rule ids may hold ``:``; the alert type
    and the entity type never do, so the first and the last ``:`` split the key."""
    if len(key) > MAX_KEY:
        raise BadPatternKey(f"pattern_key: longer than {MAX_KEY} characters")
    alert_type, sep, rest = key.partition(":")
    rule_id, sep2, entity_type = rest.rpartition(":")
    if not sep or not sep2:
        raise BadPatternKey("pattern_key: must be alert_type:rule_id:entity_type")
    if alert_type not in ALERT_TYPES:
        raise BadPatternKey(f"pattern_key: alert type must be one of {', '.join(ALERT_TYPES)}")
    if entity_type not in ENTITY_TYPES:
        raise BadPatternKey(f"pattern_key: entity type must be one of {', '.join(ENTITY_TYPES)}")
    if not rule_id or len(rule_id) > 256 or CONTROL_RE.search(rule_id):
        raise BadPatternKey("pattern_key: rule id must be 1-256 characters without control characters")
    return alert_type, rule_id, entity_type


@dataclass
class Pattern:
    alert_type: str
    rule_id: str
    entity_type: str
    rule_title: str = ""
    tp: int = 0
    fp: int = 0
    last_feedback_at: float = 0.0
    alert_ids: list[str] = field(default_factory=list)  # newest feedback first
    alert_count: int = 0

    @property
    def key(self) -> str:
        return pattern_key(self.alert_type, self.rule_id, self.entity_type)

    def eligible(self, min_tp: int) -> bool:
        return self.tp >= min_tp and self.tp > self.fp

    def as_json(self) -> dict[str, Any]:
        return {
            "pattern_key": self.key,
            "alert_type": self.alert_type,
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "entity_type": self.entity_type,
            "tp": self.tp,
            "fp": self.fp,
            "alerts": self.alert_count,
            "alert_ids": self.alert_ids[:MAX_ALERT_IDS],
            "last_feedback_at": iso(self.last_feedback_at),
        }


def _entity_types(body: str) -> list[str]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [NO_ENTITY]
    ents = doc.get("entities") if isinstance(doc, dict) else None
    kinds = {e.get("type") for e in ents or [] if isinstance(e, dict)}
    found = [k for k in ENTITY_KINDS if k in kinds]
    return found or [NO_ENTITY]


def _alert_rows(conn: Connection, ids: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for i in range(0, len(ids), ID_CHUNK):
        chunk = ids[i : i + ID_CHUNK]
        stmt = select(alerts.c.id, alerts.c.type, alerts.c.rule_id, alerts.c.title, alerts.c.body)
        for row in conn.execute(stmt.where(alerts.c.id.in_(chunk))):
            rows[row.id] = row
    return rows


def find_patterns(engine: Engine) -> tuple[list[Pattern], int]:
    """Every pattern of the newest :data:`MAX_FEEDBACK` verdicts, most true positives first,
    and how many verdicts were read. Verdicts on deleted alerts count for nothing."""
    with engine.connect() as conn:
        verdicts = conn.execute(
            select(alert_feedback.c.alert_id, alert_feedback.c.feedback, alert_feedback.c.created_at)
            .order_by(alert_feedback.c.created_at.desc(), alert_feedback.c.id.desc())
            .limit(MAX_FEEDBACK)
        ).all()
        rows = _alert_rows(conn, list(dict.fromkeys(v.alert_id for v in verdicts)))
    found: dict[tuple[str, str, str], Pattern] = {}
    kinds_of: dict[str, list[str]] = {}
    for v in verdicts:
        row = rows.get(v.alert_id)
        if row is None:
            continue
        kinds = kinds_of.get(row.id)
        if kinds is None:
            kinds = kinds_of[row.id] = _entity_types(row.body)
        for kind in kinds:
            p = found.get((row.type, row.rule_id, kind))
            if p is None:
                p = found[(row.type, row.rule_id, kind)] = Pattern(row.type, row.rule_id, kind, row.title)
            if v.feedback == "tp":
                p.tp += 1
            elif v.feedback == "fp":
                p.fp += 1
            p.last_feedback_at = max(p.last_feedback_at, v.created_at)
            if row.id not in p.alert_ids:
                p.alert_ids.append(row.id)
                p.alert_count += 1
    ordered = sorted(found.values(), key=lambda p: (-p.tp, -p.last_feedback_at, p.key))
    return ordered, len(verdicts)


def eligible_patterns(engine: Engine, min_tp: int) -> tuple[list[Pattern], int]:
    patterns, read = find_patterns(engine)
    return [p for p in patterns if p.eligible(min_tp)], read


def find_pattern(engine: Engine, key: str, min_tp: int) -> Pattern | None:
    """The pattern of ``key`` while it is eligible, else None."""
    for p in eligible_patterns(engine, min_tp)[0]:
        if p.key == key:
            return p
    return None


def true_positive_notes(engine: Engine, alert_ids: list[str], limit: int) -> list[dict[str, Any]]:
    """The newest TP verdicts on ``alert_ids``, with their notes."""
    if not alert_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(alert_feedback)
            .where(alert_feedback.c.alert_id.in_(alert_ids[:ID_CHUNK]), alert_feedback.c.feedback == "tp")
            .order_by(alert_feedback.c.created_at.desc(), alert_feedback.c.id.desc())
            .limit(limit)
        ).all()
    return [{"alert_id": r.alert_id, "note": r.note, "origin": r.origin, "created_at": iso(r.created_at)} for r in rows]
