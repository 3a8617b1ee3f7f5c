"""Built-in stateful rules: what a pattern over one event cannot say.

Each rule is a small class with ``observe(event) -> list[Finding]`` (the stateful
pipeline path) and ``check(event) -> list[Finding]`` (a stateless verdict on one
event; empty for rules that need history). State is bounded by
``detection.max_state_entries`` per rule and keyed on event time, so a replay
gives the same findings as the live run.
"""

from __future__ import annotations

from agentwatch.detect.builtin.base import BuiltinRule, Lru
from agentwatch.detect.builtin.exfiltration import SensitiveReadThenEgress
from agentwatch.detect.builtin.models import UnapprovedModel
from agentwatch.detect.builtin.prompt_echo import SystemPromptEcho
from agentwatch.detect.builtin.tool_drift import ToolDescriptionDrift

__all__ = [
    "BuiltinRule",
    "Lru",
    "SensitiveReadThenEgress",
    "SystemPromptEcho",
    "ToolDescriptionDrift",
    "UnapprovedModel",
    "default_rules",
]


def default_rules(settings: object) -> list[BuiltinRule]:
    """The built-in rules configured by ``detection`` settings."""
    cap = getattr(settings, "max_state_entries", 50_000)
    return [
        ToolDescriptionDrift(cap),
        SensitiveReadThenEgress(cap, window_s=getattr(settings, "exfil_window_s", 600.0)),
        SystemPromptEcho(cap),
        UnapprovedModel(getattr(settings, "approved_providers", []), getattr(settings, "approved_models", [])),
    ]
