"""ATR (Agent Threat Rules): the rule set bundled in pyatr, loaded as data, matched by our engine."""

from __future__ import annotations

import functools
import threading

from agentwatch.detect.atr.matcher import AtrMatcher
from agentwatch.detect.atr.rules import AtrRule, RuleError, bundled_rules, load_dir, load_file, parse_rule
from agentwatch.detect.atr.views import View, view_of_case, views_of

__all__ = [
    "AtrMatcher",
    "AtrRule",
    "RuleError",
    "View",
    "bundled_matcher",
    "bundled_rules",
    "load_dir",
    "load_file",
    "parse_rule",
    "view_of_case",
    "views_of",
]


_LOCK = threading.Lock()


def bundled_matcher() -> AtrMatcher:
    """The compiled bundled rule set, built once per process (it takes seconds); concurrent
    callers (several engines starting at once) wait for the one build."""
    with _LOCK:
        return _build()


@functools.cache
def _build() -> AtrMatcher:
    return AtrMatcher(bundled_rules())
