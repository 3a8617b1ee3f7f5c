"""The atomic-test catalogue: safe simulations of agent attacks, shipped as package data.

Each file under ``catalog/`` is one test: an id, a name and description, the ATT&CK tags it
exercises (read with :func:`agentwatch.detect.coverage.attack_tags`, so tactic and technique
spelling is the coverage matrix's), the detections expected to fire (``rule_id`` and
``alert_type``), and a few OISP events (``offset_s`` seconds after the first one). The events
hold only synthetic values; an execution fills in the envelope that marks them as simulated
(:mod:`agentwatch.purple.runner`) and replaces ``${run}`` in their text with the run's own id
(for values a stateful rule keys on, such as a request id).

SigmaHQ-derived tests are not offered: agentwatch does not ship SigmaHQ rules nor their
regression samples (``agentwatch rules test`` reads them from a folder the user names).

A broken file is a bug in agentwatch, so loading raises instead of skipping it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentwatch.alerts.model import ALERT_TYPES
from agentwatch.detect.coverage import attack_tags

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
TEST_ID = re.compile(r"AW-AT-\d{3}")
SOURCE = "agentwatch"
MAX_EVENTS = 20
MAX_OFFSET_S = 3600.0
FIELDS = {"id", "name", "description", "attack", "expected", "events"}


@dataclass(frozen=True)
class Expected:
    rule_id: str
    alert_type: str

    def as_json(self) -> dict[str, str]:
        return {"rule_id": self.rule_id, "alert_type": self.alert_type}


@dataclass(frozen=True)
class AtomicTest:
    id: str
    name: str
    description: str
    tags: tuple[str, ...]
    tactics: tuple[str, ...]
    techniques: tuple[str, ...]
    expected: tuple[Expected, ...]
    events: tuple[dict[str, Any], ...]  # each with its ``offset_s`` (0 when left out)
    file: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "source": SOURCE,
            "platform": "ai-agent",
            "tactics": list(self.tactics),
            "techniques": list(self.techniques),
            "tags": list(self.tags),
            "expected": [e.as_json() for e in self.expected],
            "events": len(self.events),
            "event_types": sorted({str(e["event_type"]) for e in self.events}),
        }


class CatalogError(ValueError):
    """A catalogue file breaks a rule (``file: field: rule``)."""


def _text(doc: dict[str, Any], key: str, file: str, limit: int) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise CatalogError(f"{file}: {key}: must be text of 1 to {limit} characters")
    return " ".join(value.split())


def _expected(items: Any, file: str) -> tuple[Expected, ...]:
    if not isinstance(items, list) or not items:
        raise CatalogError(f"{file}: expected: must be a non-empty list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"rule_id", "alert_type"}:
            raise CatalogError(f"{file}: expected.{i}: must hold exactly rule_id and alert_type")
        if item["alert_type"] not in ALERT_TYPES:
            raise CatalogError(f"{file}: expected.{i}.alert_type: not an alert type")
        out.append(Expected(str(item["rule_id"]), str(item["alert_type"])))
    return tuple(out)


def _events(items: Any, file: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        raise CatalogError(f"{file}: events: must be a list of 1 to {MAX_EVENTS} events")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("event_type"), str):
            raise CatalogError(f"{file}: events.{i}: must be an object with an event_type")
        offset = item.get("offset_s", 0)
        if not isinstance(offset, int | float) or not 0 <= offset <= MAX_OFFSET_S:
            raise CatalogError(f"{file}: events.{i}.offset_s: must be 0 to {MAX_OFFSET_S:g} seconds")
        out.append({**item, "offset_s": float(offset)})
    return tuple(out)


def parse(doc: Any, file: str) -> AtomicTest:
    if not isinstance(doc, dict):
        raise CatalogError(f"{file}: must be a mapping")
    if set(doc) != FIELDS:
        raise CatalogError(f"{file}: fields must be exactly {', '.join(sorted(FIELDS))}")
    test_id = doc["id"]
    if not isinstance(test_id, str) or TEST_ID.fullmatch(test_id) is None:
        raise CatalogError(f"{file}: id: must look like AW-AT-001")
    tags = doc["attack"]
    if not isinstance(tags, list) or not tags:
        raise CatalogError(f"{file}: attack: must be a non-empty list of ATT&CK tags")
    tactics, techniques = attack_tags(tags)
    if not techniques:
        raise CatalogError(f"{file}: attack: names no technique (attack.tNNNN)")
    return AtomicTest(
        id=test_id,
        name=_text(doc, "name", file, 200),
        description=_text(doc, "description", file, 2000),
        tags=tuple(str(t) for t in tags),
        tactics=tuple(sorted(tactics)),
        techniques=tuple(sorted(techniques)),
        expected=_expected(doc["expected"], file),
        events=_events(doc["events"], file),
        file=file,
    )


@functools.cache
def catalog() -> dict[str, AtomicTest]:
    """Every test of the catalogue by id, in id order (read once per process)."""
    tests: dict[str, AtomicTest] = {}
    for path in sorted(CATALOG_DIR.glob("*.yaml")):
        test = parse(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
        if test.id in tests:
            raise CatalogError(f"{path.name}: id: {test.id} is already used by {tests[test.id].file}")
        tests[test.id] = test
    return dict(sorted(tests.items()))
