"""The ambient copilot: context-aware suggestions for an alert, case, rule or playbook, and running them."""
