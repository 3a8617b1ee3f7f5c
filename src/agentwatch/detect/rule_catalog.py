"""AiSOC's view of the one rule catalogue: filters, keyset pages and the rule document.

The rules are those of the running :class:`~agentwatch.detect.engine.DetectionEngine`
(the same set ``/api/v1/sigma/rules`` lists). A rule's ``origin`` is ``user`` for rules
uploaded through either face and ``bundled`` for everything shipped or configured (the
ATR set, the agentwatch pack, built-in detectors, Sigma directories); only user rules can
be replaced or deleted. Pages are ordered by format, then id, and a cursor names the
last rule a page gave, so rules added meanwhile never shift a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentwatch.alerts.model import severity_label
from agentwatch.detect.coverage import attack_tags
from agentwatch.detect.engine import RuleInfo
from agentwatch.detect.queries import tactic_tags, technique_tags
from agentwatch.store.keyset import encode_cursor

FORMATS = ("atr", "builtin", "pack", "sigma")  # the order pages follow
SOURCES = (*FORMATS, "user", "bundled")
LEVELS = ("informational", "low", "medium", "high", "critical")


def origin(info: RuleInfo) -> str:
    return "user" if info.uploaded else "bundled"


def rule_doc(info: RuleInfo, fires_24h: int) -> dict[str, Any]:
    """One rule as both faces show it, plus AiSOC's names (``name``, ``severity_label``,
    ``origin``, ``mitre``)."""
    tactics, techniques = attack_tags(info.tags)
    return {
        **info.to_json(),
        "name": info.title,
        "severity_label": severity_label(info.severity),
        "origin": origin(info),
        "editable": info.uploaded,
        "mitre": {"tactics": sorted(tactics), "techniques": sorted(techniques)},
        "fire_count_24h": fires_24h,
    }


@dataclass
class RuleFilter:
    source: str | None = None
    enabled: bool | None = None
    level: str | None = None
    severity_min: int | None = None
    tactic: str | None = None
    technique: str | None = None
    q: str | None = None

    def keeps(self, info: RuleInfo) -> bool:
        if self.source is not None and self.source not in (info.format, origin(info)):
            return False
        if self.enabled is not None and info.enabled != self.enabled:
            return False
        if self.level is not None and info.level.lower() != self.level:
            return False
        if self.severity_min is not None and info.severity < self.severity_min:
            return False
        tags = [t.lower() for t in info.tags]
        if self.tactic is not None and not set(tactic_tags(self.tactic)) & set(tags):
            return False
        if self.technique is not None:
            prefixes = technique_tags(self.technique)
            if not any(t.startswith(p) for t in tags for p in prefixes):
                return False
        if self.q is not None:
            needle = self.q.lower()
            if not any(needle in text.lower() for text in (info.id, info.title, info.description)):
                return False
        return True


def _key(info: RuleInfo) -> tuple[float, str]:
    rank = FORMATS.index(info.format) if info.format in FORMATS else len(FORMATS)
    return float(rank), info.id


def page(
    rules: list[RuleInfo], flt: RuleFilter, limit: int, after: tuple[float, str] | None
) -> tuple[list[RuleInfo], int, str | None]:
    """(the page, how many rules match in all, the cursor of the next page or None)."""
    kept = sorted((r for r in rules if flt.keeps(r)), key=_key)
    rest = kept if after is None else [r for r in kept if _key(r) > after]
    chosen = rest[:limit]
    nxt = encode_cursor(*_key(chosen[-1])) if len(rest) > limit and chosen else None
    return chosen, len(kept), nxt
