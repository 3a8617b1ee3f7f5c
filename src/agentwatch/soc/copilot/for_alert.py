"""Suggestions for an alert: open cases sharing its entities, other alerts on them, intel
indicators its entities meet, playbooks whose trigger matches it, no assignee, SLA due soon."""

from __future__ import annotations

from typing import Any

from agentwatch.alerts.model import severity_label
from agentwatch.api.text_rules import BIDI_MARKS, UNPRINTABLE
from agentwatch.intel.matcher import matcher_of
from agentwatch.soc.copilot import lookups
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.copilot.store import Offer
from agentwatch.soc.copilot.suggestion import Suggestion, sla_suggestions
from agentwatch.soc.playbooks import store as playbooks
from agentwatch.soc.playbooks.model import matches

CASE_TITLE = 256


def _names(entities: list[dict[str, Any]]) -> dict[str, str]:
    return {e["id"]: f"{e.get('type')} {e.get('value')}" for e in entities if isinstance(e, dict) and "id" in e}


def _shared(row: Any, names: dict[str, str]) -> list[str]:
    return [names[i] for i in row.entity_ids.split() if i in names]


def related_cases(
    engine: Any, alert: dict[str, Any], others: list[Any], names: dict[str, str], limit: int
) -> list[Suggestion]:
    linked = lookups.cases_of(engine, alert["id"])
    by_alert = {r.id: r for r in others}
    out = []
    for case_id, (case, via) in lookups.open_cases_linking(engine, list(by_alert)).items():
        if case_id in linked:
            continue
        shared = sorted({n for a in via for n in _shared(by_alert[a], names)})
        reason = (
            f"Case {case_id} ({case.title!r}, {case.status}) links {len(via)} alert(s) on the same "
            f"{', '.join(shared)}: {', '.join(via[:5])}."
        )
        out.append(
            Suggestion(
                "related_case",
                reason,
                {"case_id": case_id, "title": case.title, "status": case.status, "alert_ids": via, "entities": shared},
                Offer("link_alert_to_case", {"case_id": case_id, "alert_id": alert["id"]}),
                f"Link alert {alert['id']} to case {case_id}",
            )
        )
        if len(out) >= limit:
            break
    return out


def related_alerts(alert: dict[str, Any], others: list[Any], names: dict[str, str], limit: int) -> list[Suggestion]:
    if not others:
        return []
    shown = others[:limit]
    shared = sorted({n for r in shown for n in _shared(r, names)})
    ids = [alert["id"], *(r.id for r in shown)]
    reason = (
        f"{len(others)} other open alert(s) name the same {', '.join(shared)}: "
        + "; ".join(f"{r.id} ({r.title!r}, {severity_label(r.severity)})" for r in shown[:5])
        + "."
    )
    severity = max([alert["severity"], *(r.severity for r in shown)])
    # entity values are as events named them: a case's title must be printable (as the cases API wants)
    title = BIDI_MARKS.sub(" ", UNPRINTABLE.sub(" ", f"Related alerts on {', '.join(shared)}"))[:CASE_TITLE]
    return [
        Suggestion(
            "related_alerts",
            reason,
            {"alert_ids": [r.id for r in shown], "total": len(others), "entities": shared},
            Offer("create_case", {"alert_ids": ids, "title": title, "severity": severity}),
            f"Open a case holding alert {alert['id']} and {len(shown)} related alert(s)",
        )
    ]


def intel_matches(aw: Any, alert: dict[str, Any], limit: int) -> list[Suggestion]:
    index = matcher_of(aw).index()
    out = []
    seen: set[str] = set()
    for ent in alert.get("entities", [])[: lookups.MAX_ENTITIES]:
        kind, value = ent.get("type"), ent.get("value")
        if kind not in ("ip", "domain") or not isinstance(value, str):
            continue
        for ind in index.value(kind, value.lower() if kind == "domain" else value):
            if ind.id in seen:
                continue
            seen.add(ind.id)
            reason = (
                f"The alert's {kind} {value} meets the {ind.kind} indicator {ind.value} from {ind.source} "
                f"(severity {ind.severity})" + (f": {ind.description[:200]}" if ind.description else "") + "."
            )
            out.append(Suggestion("intel_match", reason, {"entity": ent, "indicator": ind.as_json()}))
    return out[:limit]


def matching_playbooks(engine: Any, alert: dict[str, Any], limit: int) -> list[Suggestion]:
    out = []
    for pb in playbooks.automatic(engine):
        if not pb["enabled"] or not matches(pb["trigger"], alert):
            continue
        t = pb["trigger"]
        said = [f"severity at least {t.get('min_severity', 0)}"]
        for name in ("alert_types", "rule_ids", "tags"):
            if t.get(name):
                said.append(f"{name.replace('_', ' ')} {', '.join(t[name])}")
        reason = f"Playbook {pb['name']!r} is triggered by alerts like this one ({'; '.join(said)})."
        out.append(
            Suggestion(
                "playbook_match",
                reason,
                {"playbook_id": pb["id"], "name": pb["name"], "steps": [s["action"] for s in pb["steps"]]},
                Offer("run_playbook", {"playbook_id": pb["id"], "alert_id": alert["id"]}),
                f"Run playbook {pb['name']!r} on alert {alert['id']}",
            )
        )
    return out[:limit]


def unassigned(alert: dict[str, Any], caller: str | None) -> list[Suggestion]:
    if alert.get("assignee") or alert["status"] == "closed":
        return []
    reason = f"Nobody is assigned to this {alert['status']} {alert['severity_label']} alert."
    if caller is None:
        return [Suggestion("unassigned", reason, {"status": alert["status"]})]
    return [
        Suggestion(
            "unassigned",
            reason,
            {"status": alert["status"]},
            Offer("assign_alert", {"alert_id": alert["id"], "assignee": caller}),
            f"Assign alert {alert['id']} to {caller}",
        )
    ]


def suggest(aw: Any, alert: dict[str, Any], settings: CopilotSettings, caller: str | None) -> list[Suggestion]:
    engine = aw.engine
    limit = settings.max_per_kind
    names = _names(alert.get("entities", []))
    others = lookups.alerts_on(engine, list(names)[: lookups.MAX_ENTITIES], {alert["id"]})
    own = lookups.alert_rows(engine, [alert["id"]])
    return [
        *related_cases(engine, alert, others, names, limit),
        *related_alerts(alert, others, names, limit),
        *intel_matches(aw, alert, limit),
        *matching_playbooks(engine, alert, limit),
        *unassigned(alert, caller),
        *sla_suggestions(lookups.sla_clocks(engine, own), settings.sla_warn_minutes * 60, limit),
    ]
