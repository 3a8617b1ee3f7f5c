"""One suggestion: what kind it is, why (in plain words, citing the data), the data itself, and
optionally the action that acts on it (stored as an offer when the answer is made)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentwatch.soc.copilot.store import Offer


@dataclass
class Suggestion:
    kind: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    offer: Offer | None = None
    label: str = ""  # what running the action does, e.g. "Link alert 1 to case 2"


def minutes(seconds: float) -> str:
    """A duration in words: "12 minutes", "3 hours", "2 days"."""
    s = abs(seconds)
    if s < 3600:
        n, unit = max(1, round(s / 60)), "minute"
    elif s < 2 * 86400:
        n, unit = round(s / 3600), "hour"
    else:
        n, unit = round(s / 86400), "day"
    return f"{n} {unit}{'s' if n != 1 else ''}"


def sla_suggestions(
    clocks: list[dict[str, Any]], warn_s: float, limit: int, *, only_breached: bool = False
) -> list[Suggestion]:
    """``sla_breached`` for each clock past its due time, ``sla_due_soon`` for each due within
    ``warn_s`` (unless ``only_breached``)."""
    out: list[Suggestion] = []
    for c in clocks:
        verb = "acknowledged" if c["kind"] == "acknowledge" else "resolved"
        target = f"the {c['band']} target of {c['minutes']} minutes to be {verb}"
        if c["left_s"] <= 0:
            reason = f"Alert {c['alert_id']} is past {target}: it was due {minutes(c['left_s'])} ago."
            kind = "sla_breached"
        elif c["left_s"] <= warn_s and not only_breached:
            reason = f"Alert {c['alert_id']} falls due under {target} in {minutes(c['left_s'])}."
            kind = "sla_due_soon"
        else:
            continue
        data = {k: c[k] for k in ("alert_id", "kind", "band", "minutes")}
        data["seconds_left"] = round(c["left_s"], 1)
        out.append(Suggestion(kind, reason, data))
    return out[:limit]
