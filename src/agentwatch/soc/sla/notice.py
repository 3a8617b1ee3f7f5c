"""What a breach notice says: what breached (the alert's id and title, its severity and band),
which limit and how late, and nothing of the alert's events or message.

Through the alert outputs it is shaped like an alert (what they render: ``id``, ``type``,
``title``, ``message``, ``severity`` ...) of ``type`` ``sla_breach``, its ``id`` the breach's
(the same on every attempt, so a receiver deduplicates by it; PagerDuty's ``dedup_key``), with
the facts of the breach beside them and again under ``details``. Through Web Push it is the
small payload a lock screen may show."""

from __future__ import annotations

from typing import Any

import orjson

from agentwatch.alerts.model import severity_label
from agentwatch.events.model import iso
from agentwatch.soc.sla.outbox import Claimed

TYPE = "sla_breach"
MAX_TITLE = 200
MAX_PUSHES = 5  # breaches of one pass pushed one by one; the rest in one summary push
WHAT = {"acknowledge": "acknowledged", "resolve": "resolved"}


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _late(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def render(c: Claimed, now: float) -> dict[str, Any]:
    """The notice of ``c`` as the alert outputs take it, at ``now``."""
    over = round(max(0.0, now - c.breached_at), 3)
    title = _short(c.alert_title or c.alert_id, MAX_TITLE)
    facts = {
        "alert_id": c.alert_id,
        "alert_title": title,
        "kind": c.kind,
        "band": c.band,
        "limit_minutes": c.limit_minutes,
        "started_at": iso(c.started_at),
        "due_at": iso(c.due_at),
        "breached_at": iso(c.breached_at),
        "over_s": over,
    }
    return {
        "id": c.id,
        "type": TYPE,
        "detector": "sla",
        "rule_id": f"sla.{c.band}.{c.kind}",
        "title": f"SLA breach: {title}",
        "message": (
            f"Alert {c.alert_id} ({c.band}, severity {c.severity}) was not {WHAT.get(c.kind, c.kind)} within "
            f"{c.limit_minutes} min; {_late(over)} late."
        ),
        "severity": c.severity,
        "severity_label": severity_label(c.severity),
        "created_at": iso(c.breached_at),
        "last_seen": iso(c.breached_at),
        **facts,
        "details": facts,
    }


def push_payloads(claimed: list[Claimed]) -> list[bytes]:
    """The pushes of ``claimed``: the most severe one by one, the rest as one summary."""
    ranked = sorted(claimed, key=lambda c: c.severity, reverse=True)
    out = [
        orjson.dumps(
            {
                "type": TYPE,
                "breach_id": c.id,
                "alert_id": c.alert_id,
                "title": _short(f"SLA breach: {c.alert_title or c.alert_id}", MAX_TITLE),
                "severity": c.severity,
                "kind": c.kind,
                "band": c.band,
            }
        )
        for c in ranked[:MAX_PUSHES]
    ]
    rest = ranked[MAX_PUSHES:]
    if rest:
        n = len(rest)
        summary = {"type": "sla_breaches", "count": n, "title": f"{n} more SLA breaches", "severity": rest[0].severity}
        out.append(orjson.dumps(summary))
    return out
