"""The playbook actions: one explicit table from a step's ``action`` name to its class.

A new action is a module in this folder with one :class:`~.base.Action` subclass, and one
line here.
"""

from __future__ import annotations

from agentwatch.soc.playbooks.actions.add_alert_to_case import AddAlertToCase
from agentwatch.soc.playbooks.actions.add_case_comment import AddCaseComment
from agentwatch.soc.playbooks.actions.add_indicator import AddIndicator
from agentwatch.soc.playbooks.actions.assign_alert import AssignAlert
from agentwatch.soc.playbooks.actions.base import Action, ActionError, RunContext
from agentwatch.soc.playbooks.actions.notify_webhook import NotifyWebhook
from agentwatch.soc.playbooks.actions.set_alert_status import SetAlertStatus

ACTIONS: dict[str, Action] = {
    "set_alert_status": SetAlertStatus(),
    "assign_alert": AssignAlert(),
    "add_alert_to_case": AddAlertToCase(),
    "add_case_comment": AddCaseComment(),
    "add_indicator": AddIndicator(),
    "notify_webhook": NotifyWebhook(),
}

__all__ = ["ACTIONS", "Action", "ActionError", "RunContext"]
