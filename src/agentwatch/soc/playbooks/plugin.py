"""Registers the playbooks capability's parts at the extension points (see agentwatch.extensions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch.extensions import Registry


def register(registry: Registry) -> None:
    """The automatic trigger (a lifecycle part fed by the alert recorder), the runs of
    ``execute`` that outlast their request (another), the playbook routes, and the gate
    releasing a run held for approval (kind ``playbook_run`` of the approvals)."""
    from agentwatch.soc.playbooks import api, approval
    from agentwatch.soc.playbooks.background import BackgroundRuns
    from agentwatch.soc.playbooks.trigger import PlaybookTrigger

    approval.install()
    registry.lifecycle.register("playbooks", PlaybookTrigger)
    registry.lifecycle.register("playbook_runs", BackgroundRuns)
    registry.routers.register("playbooks", api.router)
