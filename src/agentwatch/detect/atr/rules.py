"""Agent-threat rules as data: the ATR set bundled in ``pyatr`` and rule files in ATR format.

We read the rules pyatr ships (``_bundled_rules.json``) as plain data and never
run pyatr's engine; matching is ours (:mod:`.matcher`). The same loader reads
ATR-format YAML files (agentwatch's own rule pack uses this format, adding
ATLAS/ATT&CK tag lists and test events). Severity words become the 0-10 scale.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from agentwatch.alerts.model import SEVERITY_WORDS

OPERATORS = ("regex", "contains", "exact", "starts_with", "gt", "lt", "gte", "lte", "eq")
INACTIVE = ("draft", "deprecated")
MAX_CONDITIONS = 256
MAX_RULE_BYTES = 512 * 1024

# ATR category -> (ATLAS technique, ATT&CK tactic) tags we attach; our own mapping.
CATEGORY_TAGS: dict[str, list[str]] = {
    "prompt-injection": ["atlas.aml.t0051", "attack.initial_access"],
    "context-exfiltration": ["atlas.aml.t0057", "attack.exfiltration"],
    "tool-poisoning": ["atlas.aml.t0053", "atlas.aml.t0051.001", "attack.defense_evasion"],
    "agent-manipulation": ["atlas.aml.t0054", "attack.defense_evasion"],
    "privilege-escalation": ["atlas.aml.t0053", "attack.privilege_escalation"],
    "skill-compromise": ["atlas.aml.t0010", "attack.t1195", "attack.initial_access"],
    "model-abuse": ["atlas.aml.t0034", "attack.impact"],
    "excessive-autonomy": ["atlas.aml.t0053", "attack.execution"],
    "data-poisoning": ["atlas.aml.t0020", "attack.persistence"],
    "model-security": ["atlas.aml.t0024", "attack.collection"],
}


class RuleError(ValueError):
    """A rule file that cannot be used; ``where`` names the rule or file and field."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str


@dataclass
class AtrRule:
    id: str
    title: str
    severity: int
    severity_word: str
    description: str
    status: str
    conditions: tuple[Condition, ...]
    logic: str  # "any" | "all"
    category: str
    tags: list[str]
    source: str
    test_cases: dict[str, list[dict[str, Any]]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    subcategory: str = ""  # e.g. "secrets": lets an inline guard redact instead of block

    @property
    def active(self) -> bool:
        return self.status not in INACTIVE


def _str(data: dict[str, Any], key: str, where: str, *, required: bool = True, limit: int = 4096) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{where}.{key}", "must be a non-empty string")
    if len(value) > limit:
        raise RuleError(f"{where}.{key}", f"longer than {limit} characters")
    return value.strip()


def _tag_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 128 for t in value):
        raise RuleError(where, "must be a list of tag strings")
    return [t.lower() for t in value]


def parse_rule(data: Any, source: str) -> AtrRule:
    """One rule document -> AtrRule; raises RuleError naming the broken field."""
    if not isinstance(data, dict):
        raise RuleError(source, "a rule must be a mapping")
    rid = _str(data, "id", source, limit=128)
    where = rid
    title = _str(data, "title", where, limit=1000)
    word = str(data.get("severity", "medium")).lower()
    if word not in SEVERITY_WORDS:
        raise RuleError(f"{where}.severity", f"must be one of {', '.join(sorted(SEVERITY_WORDS))}")
    det = data.get("detection")
    if not isinstance(det, dict):
        raise RuleError(f"{where}.detection", "must be a mapping")
    logic = str(det.get("condition", "any")).lower()
    if logic not in ("any", "all"):
        raise RuleError(f"{where}.detection.condition", "must be 'any' or 'all'")
    raw_conds = det.get("conditions")
    if not isinstance(raw_conds, list) or not raw_conds:
        raise RuleError(f"{where}.detection.conditions", "must be a non-empty list")
    if len(raw_conds) > MAX_CONDITIONS:
        raise RuleError(f"{where}.detection.conditions", f"at most {MAX_CONDITIONS} conditions")
    conds = []
    for i, c in enumerate(raw_conds):
        cw = f"{where}.detection.conditions[{i}]"
        if not isinstance(c, dict):
            raise RuleError(cw, "must be a mapping")
        op = str(c.get("operator", ""))
        if op not in OPERATORS:
            raise RuleError(f"{cw}.operator", f"must be one of {', '.join(OPERATORS)}")
        conds.append(Condition(_str(c, "field", cw, limit=128), op, _str(c, "value", cw, limit=16_384)))
    raw_tags = data.get("tags") or {}
    if not isinstance(raw_tags, dict):
        raise RuleError(f"{where}.tags", "must be a mapping")
    category = str(raw_tags.get("category", ""))
    tags = [
        *_tag_list(raw_tags.get("atlas"), f"{where}.tags.atlas"),
        *_tag_list(raw_tags.get("attack"), f"{where}.tags.attack"),
    ]
    if not tags:
        tags = list(CATEGORY_TAGS.get(category, []))
    if category:
        tags.append(f"atr.{category}")
    cases = data.get("test_cases")
    if cases is not None and (
        not isinstance(cases, dict)
        or not all(isinstance(cases.get(k, []), list) for k in ("true_positives", "true_negatives"))
    ):
        raise RuleError(f"{where}.test_cases", "must map true_positives/true_negatives to lists")
    return AtrRule(
        id=rid,
        title=title,
        severity=SEVERITY_WORDS[word],
        severity_word=word,
        description=str(data.get("description") or "").strip()[:4000],
        status=str(data.get("status", "experimental")),
        conditions=tuple(conds),
        logic=logic,
        category=category,
        tags=list(dict.fromkeys(tags)),
        source=source,
        test_cases=cases,
        raw=data,
        subcategory=str(raw_tags.get("subcategory", "")),
    )


def bundled_rules() -> list[AtrRule]:
    """The ATR rule set shipped inside the pinned ``pyatr`` wheel, read as data."""
    text = importlib.resources.files("pyatr").joinpath("_bundled_rules.json").read_bytes()
    return [parse_rule(doc, f"pyatr:{doc.get('id', i)}") for i, doc in enumerate(orjson.loads(text))]


def load_file(path: Path) -> list[AtrRule]:
    """Rules from one YAML file (one document per rule)."""
    data = path.read_bytes()
    if len(data) > MAX_RULE_BYTES:
        raise RuleError(str(path), f"larger than {MAX_RULE_BYTES} bytes")
    try:
        docs = [d for d in yaml.safe_load_all(data) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise RuleError(where, f"invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return [parse_rule(doc, str(path)) for doc in docs]


def load_dir(directory: Path) -> tuple[list[AtrRule], list[tuple[str, str]]]:
    """Every rule under ``directory``; returns (rules, [(file, error)])."""
    rules: list[AtrRule] = []
    errors: list[tuple[str, str]] = []
    for path in sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")]):
        try:
            rules.extend(load_file(path))
        except RuleError as exc:
            errors.append((str(path), str(exc)))
    return rules, errors
