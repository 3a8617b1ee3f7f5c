"""Suggestions for a case: alerts on its entities it does not link yet, no assignee, SLA
breaches among its alerts, no activity for ``copilot.stale_days``."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import select

from agentwatch.alerts.model import severity_label
from agentwatch.soc.cases.schema import cases
from agentwatch.soc.copilot import lookups
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.copilot.store import Offer
from agentwatch.soc.copilot.suggestion import Suggestion, minutes, sla_suggestions

DONE = ("resolved", "closed")


def unlinked_alerts(engine: Any, case: dict[str, Any], rows: list[Any], limit: int) -> list[Suggestion]:
    # the first MAX_ENTITIES distinct ones met (a dict, not a list: up to 1000 alerts of 16 each)
    firsts: dict[str, None] = {}
    for r in rows:
        if len(firsts) >= lookups.MAX_ENTITIES:
            break
        firsts.update(dict.fromkeys(lookups.entity_ids_of(r.entity_ids)))
    entity_ids = list(firsts)[: lookups.MAX_ENTITIES]
    wanted = set(entity_ids)
    names: dict[str, str] = {}
    for r in rows:
        if len(names) == len(entity_ids):
            break
        for ent in orjson.loads(r.body or "{}").get("entities", []):
            if isinstance(ent, dict) and isinstance(ent.get("id"), str) and ent["id"] in wanted:
                names.setdefault(ent["id"], f"{ent.get('type')} {ent.get('value')}")
    out = []
    for other in lookups.alerts_on(engine, entity_ids, set(case["alert_ids"]))[:limit]:
        shared = sorted({names.get(i, i) for i in other.entity_ids.split() if i in names})
        reason = (
            f"Alert {other.id} ({other.title!r}, {severity_label(other.severity)}, {other.status}) names the "
            f"same {', '.join(shared)} as this case's alerts, and the case does not link it."
        )
        out.append(
            Suggestion(
                "unlinked_alert",
                reason,
                {"alert_id": other.id, "title": other.title, "entities": shared},
                Offer("link_alert_to_case", {"case_id": case["id"], "alert_id": other.id}),
                f"Link alert {other.id} to case {case['id']}",
            )
        )
    return out


def unassigned(case: dict[str, Any], caller: str | None) -> list[Suggestion]:
    if case["assignee"] or case["status"] in DONE:
        return []
    reason = f"Nobody is assigned to this {case['status']} case (severity {case['severity']})."
    if caller is None:
        return [Suggestion("unassigned", reason, {"status": case["status"]})]
    return [
        Suggestion(
            "unassigned",
            reason,
            {"status": case["status"]},
            Offer("assign_case", {"case_id": case["id"], "assignee": caller}),
            f"Assign case {case['id']} to {caller}",
        )
    ]


def stale(engine: Any, case: dict[str, Any], settings: CopilotSettings, now: float) -> list[Suggestion]:
    if case["status"] in DONE:
        return []
    with engine.connect() as conn:
        updated = conn.execute(select(cases.c.updated_at).where(cases.c.id == case["id"])).scalar()
    if updated is None or now - updated < settings.stale_days * 86400:
        return []
    idle = now - updated
    reason = (
        f"The case is {case['status']} but nothing happened on it for {minutes(idle)} "
        f"(last activity {case['updated_at']}; stale after {settings.stale_days:g} days)."
    )
    return [Suggestion("stale", reason, {"last_activity": case["updated_at"], "idle_s": round(idle)})]


def suggest(aw: Any, case: dict[str, Any], settings: CopilotSettings, caller: str | None) -> list[Suggestion]:
    engine = aw.engine
    now = time.time()
    rows = lookups.alert_rows(engine, case["alert_ids"])
    clocks = lookups.sla_clocks(engine, rows, now) if case["status"] not in DONE else []
    return [
        *unlinked_alerts(engine, case, rows, settings.max_per_kind),
        *unassigned(case, caller),
        *sla_suggestions(clocks, 0, settings.max_per_kind, only_breached=True),
        *stale(engine, case, settings, now),
    ]
