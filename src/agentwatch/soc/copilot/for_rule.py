"""Suggestions for a detection rule: its true/false-positive counts from labelled alerts, its
alert volume over ``copilot.rule_window_days``, and, when it is noisy (many alerts, or mostly
false positives), disabling it."""

from __future__ import annotations

import time
from typing import Any

from agentwatch.soc.copilot import lookups
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.copilot.store import Offer
from agentwatch.soc.copilot.suggestion import Suggestion


def suggest(engine: Any, rule: dict[str, Any], settings: CopilotSettings) -> list[Suggestion]:
    """``rule``: ``{"id", "title", "enabled"}`` of a rule of the running engine."""
    rule_id = rule["id"]
    labels = lookups.rule_labels(engine, rule_id)
    days = settings.rule_window_days
    volume = lookups.rule_volume(engine, rule_id, time.time() - days * 86400)
    out: list[Suggestion] = []
    labelled = labels["tp"] + labels["fp"]
    ratio = labels["fp"] / labelled if labelled else 0.0
    if labelled:
        reason = (
            f"Of the rule's {labelled} labelled alert(s), {labels['tp']} are true positives and "
            f"{labels['fp']} false positives ({ratio:.0%} false)."
        )
        out.append(Suggestion("rule_feedback", reason, {**labels, "fp_ratio": round(ratio, 3)}))
    if volume["alerts"]:
        reason = (
            f"The rule raised {volume['alerts']} alert(s) in the last {days} day(s), "
            f"gathering {volume['findings']} finding(s)."
        )
        out.append(Suggestion("rule_volume", reason, {**volume, "days": days}))
    why = []
    if volume["alerts"] >= settings.noisy_alerts:
        why.append(f"{volume['alerts']} alerts in {days} day(s) (noisy from {settings.noisy_alerts})")
    if labelled >= settings.min_labelled and ratio >= settings.noisy_fp_ratio:
        why.append(f"{ratio:.0%} of its labelled alerts are false positives (noisy from {settings.noisy_fp_ratio:.0%})")
    if why and rule["enabled"]:
        reason = f"The rule is noisy: {'; '.join(why)}. Disable it, or tune it through a detection proposal."
        out.append(
            Suggestion(
                "noisy_rule",
                reason,
                {"alerts": volume["alerts"], **labels},
                Offer("disable_rule", {"rule_id": rule_id}),
                f"Disable rule {rule_id}",
            )
        )
    return out
