"""Running the test cases embedded in ATR-format rules through our engine.

A case is either ATR-style (``input``, ``tool_response``, ``content``,
``tool_name``, ``tool_args``, ``tool_description``) or an agentwatch ``event``:
a whole OISP envelope that goes through the same normalization, entity
derivation and views as an ingested event.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from agentwatch.detect.atr.matcher import AtrMatcher
from agentwatch.detect.atr.rules import AtrRule
from agentwatch.detect.atr.views import View, view_of_case, views_of
from agentwatch.events import oisp_schema
from agentwatch.events.entities import derive
from agentwatch.events.model import Event
from agentwatch.events.normalize import normalize, oisp_data_validator

KNOWN_TYPES = set(oisp_schema.variant_titles())


def event_from_body(body: dict[str, Any]) -> Event:
    """A canonical Event from an OISP envelope, exactly as ingest would build it."""
    event = normalize(
        copy.deepcopy(body),
        type_validator=lambda t: oisp_data_validator(t) if t in KNOWN_TYPES else None,
    )
    event.entities = derive(event)
    return event


def case_views(case: dict[str, Any]) -> list[View]:
    if isinstance(case.get("event"), dict):
        return views_of(event_from_body(case["event"]))
    return [view_of_case(case)]


@dataclass(frozen=True)
class CaseResult:
    rule_id: str
    kind: str  # true_positive | true_negative
    index: int
    description: str
    passed: bool


def run_cases(rule: AtrRule, matcher: AtrMatcher | None = None) -> list[CaseResult]:
    """Every embedded case of ``rule``: true positives must fire it, true negatives must not."""
    matcher = matcher or AtrMatcher([rule])
    out: list[CaseResult] = []
    for kind, label, expect in (
        ("true_positives", "true_positive", True),
        ("true_negatives", "true_negative", False),
    ):
        for i, case in enumerate((rule.test_cases or {}).get(kind, []) or []):
            if not isinstance(case, dict):
                continue
            fired = any(r.id == rule.id for r in matcher.match_views(case_views(case)))
            out.append(CaseResult(rule.id, label, i, str(case.get("description", "")), fired == expect))
    return out
