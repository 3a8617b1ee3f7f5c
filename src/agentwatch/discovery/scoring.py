"""Explainable scoring: noisy-OR over signal weights, with corroboration rules, breakdown returned.

score = 1 - prod(1 - w_i) over the signals that count, where w_i is the weight
of the signal's grade (``discovery.weights``). Rules, each named in the breakdown:

- ``catch_all``: the service answers 2xx for a random path, so evidence that is
  only a status code or a path existing is ignored; content-verified evidence
  (a parsed model list, an MCP handshake) still counts.
- ``needs_corroboration``: an open AI port alone is not evidence; it counts only
  next to a protocol signal.
- ``confirmation``: the level ``confirmed`` needs the score threshold AND either a
  confirmed-grade signal (a protocol handshake, a verified signature) or two
  independent detectors with high-grade evidence. Otherwise the level stays ``high``.
- ``report``: a service is reported as an agent only at ``levels.report`` or above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from agentwatch.discovery.settings import DiscoverySettings
from agentwatch.discovery.signals import GRADES, Service, Signal

GENERIC_FRAMEWORKS = frozenset({"openai-compatible", "a2a", "agentpin"})


@dataclass
class Score:
    score: float
    level: str
    status: str
    reported: bool
    framework: str | None
    agent_type: str
    counted: list[Signal] = field(default_factory=list)
    breakdown: dict[str, Any] = field(default_factory=dict)


def _level(score: float, settings: DiscoverySettings, corroborated: bool) -> str:
    lv = settings.levels
    if score >= lv.confirmed and corroborated:
        return "confirmed"
    if score >= lv.high:
        return "high"
    if score >= lv.medium:
        return "medium"
    return "low"


def _status(level: str, score: float) -> str:
    if level == "confirmed":
        return "verified"
    if score >= 0.5:
        return "detected"
    if score >= 0.2:
        return "suspected"
    return "info"


def score_service(service: Service, settings: DiscoverySettings) -> Score:
    weights = settings.weights.model_dump()
    items: list[dict[str, Any]] = []
    kept: list[Signal] = []
    for s in service.signals:
        entry = {
            "detector": s.detector,
            "signal_type": s.signal_type,
            "confidence": s.confidence,
            "weight": weights[s.confidence],
            "counted": True,
            "rule": None,
        }
        if service.catch_all and not s.content_verified:
            entry.update(counted=False, rule="catch_all")
        else:
            kept.append(s)
        items.append(entry)
    protocol = [s for s in kept if not s.needs_corroboration]
    counted: list[Signal] = []
    for s, entry in zip(service.signals, items, strict=True):
        if not entry["counted"]:
            continue
        if s.needs_corroboration and not protocol:
            entry.update(counted=False, rule="needs_corroboration")
            continue
        counted.append(s)
    score = 1.0 - math.prod(1.0 - weights[s.confidence] for s in counted) if counted else 0.0
    score = round(score, 4)
    strong_detectors = {s.detector for s in counted if GRADES.index(s.confidence) >= GRADES.index("high")}
    corroborated = any(s.confidence == "confirmed" for s in counted) or len(strong_detectors) >= 2
    level = _level(score, settings, corroborated)
    rules: list[str] = sorted({e["rule"] for e in items if e["rule"]})
    if score >= settings.levels.confirmed and not corroborated:
        rules.append("confirmation")
    reported = bool(protocol) and score >= settings.levels.report and any(not s.needs_corroboration for s in counted)
    if not reported and counted:
        rules.append("report")
    ranked = sorted(
        counted,
        key=lambda s: (GRADES.index(s.confidence), s.framework is not None, s.framework not in GENERIC_FRAMEWORKS),
        reverse=True,
    )
    top = next((s for s in ranked if s.framework), None)
    agent_type = next((s.agent_type for s in ranked if s.agent_type), None) or "unknown"
    if top is not None and top.agent_type:
        agent_type = top.agent_type
    breakdown = {
        "method": "noisy-or",
        "formula": "1 - prod(1 - weight)",
        "weights": weights,
        "signals": items,
        "rules_applied": rules,
        "catch_all": service.catch_all_evidence if service.catch_all else None,
        "corroborating_detectors": sorted({s.detector for s in counted}),
        "score": score,
    }
    return Score(
        score=score,
        level=level,
        status=_status(level, score),
        reported=reported,
        framework=top.framework if top else None,
        agent_type=agent_type,
        counted=counted,
        breakdown=breakdown,
    )
