"""Suggestions for a playbook: its recent runs failing, and steps needing permissions the
caller does not hold (they could neither save such a playbook nor do those steps by hand)."""

from __future__ import annotations

from typing import Any

from agentwatch.events.model import iso
from agentwatch.soc.copilot import lookups
from agentwatch.soc.copilot.settings import CopilotSettings
from agentwatch.soc.copilot.suggestion import Suggestion
from agentwatch.soc.playbooks.actions import ACTIONS

# Runs to look at again: failed steps, or cut off (its process stopped; steps after the last one
# recorded may not have taken effect and may have to be done by hand).
FAILED = ("failed", "completed_with_errors", "interrupted")


def failing(engine: Any, playbook: dict[str, Any], settings: CopilotSettings) -> list[Suggestion]:
    runs = lookups.recent_runs(engine, playbook["id"], settings.playbook_runs)
    bad = [r for r in runs if r["status"] in FAILED]
    if not bad:
        return []
    last = bad[0]
    reason = (
        f"{len(bad)} of the playbook's last {len(runs)} run(s) did not succeed; the newest, run {last['id']} "
        f"at {iso(last['started_at'])} on alert {last['alert_id']}, ended {last['status']}"
        + (f": {last['error'][:300]}" if last["error"] else "")
        + "."
    )
    data = {"failed": len(bad), "runs": len(runs), "run_ids": [r["id"] for r in bad[:10]], "last_error": last["error"]}
    return [Suggestion("failing_runs", reason, data)]


def missing_permissions(playbook: dict[str, Any], principal: Any) -> list[Suggestion]:
    lacking: dict[str, list[int]] = {}
    for i, step in enumerate(playbook["steps"]):
        action = ACTIONS.get(step["action"])
        if action is None:
            continue
        if principal is None or not principal.can(action.permission):
            lacking.setdefault(action.permission, []).append(i)
    out = []
    for permission, steps in lacking.items():
        where = ", ".join(f"steps[{i}] ({playbook['steps'][i]['action']})" for i in steps)
        reason = f"{where} need(s) permission {permission!r}, which you do not hold: you cannot change this playbook."
        out.append(Suggestion("missing_permission", reason, {"permission": permission, "steps": steps}))
    return out


def suggest(engine: Any, playbook: dict[str, Any], settings: CopilotSettings, principal: Any) -> list[Suggestion]:
    return [*failing(engine, playbook, settings), *missing_permissions(playbook, principal)]
