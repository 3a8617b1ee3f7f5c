"""Sigma rules for agentwatch: parsed with pySigma, matched by our own compiled engine.

Public contract (used by the detection engine, the rule API and the CLI)::

    load_rule(text, source="<upload>") -> list[SigmaRule]     # raises SigmaLoadError(line, column)
    load_path(path) -> (rules, [(file, reason)])              # never raises for one bad file
    engine = SigmaEngine(rules, fieldmap=None)
    engine.match(event) -> list[SigmaRule]                    # stateless detection rules
    engine.observe(event, matched) -> [(rule, events)]        # correlation rules that fire
    engine.costs() -> {rule_id: {evaluations, matches, seconds, mean_us, title}}
    engine.set_enabled(rule_id, enabled)

``SigmaRule.alert`` is False for a detection rule that only feeds a correlation whose
``generate`` is false (the spec's default): match it, feed it to ``observe``, but do
not raise a standalone alert for it.

The names are imported on first use (PEP 562): importing the package for one of its light
modules (the ``agentwatch rules`` command's definition, say) does not load pySigma and the
engine, which the ``agentwatch`` command would otherwise pay for on every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentwatch.detect.sigma.engine import SigmaEngine
    from agentwatch.detect.sigma.loader import SigmaLoadError, SigmaRule, load_path, load_rule

_HOMES = {
    "SigmaEngine": "agentwatch.detect.sigma.engine",
    "SigmaLoadError": "agentwatch.detect.sigma.loader",
    "SigmaRule": "agentwatch.detect.sigma.loader",
    "load_path": "agentwatch.detect.sigma.loader",
    "load_rule": "agentwatch.detect.sigma.loader",
}
__all__ = ["SigmaEngine", "SigmaLoadError", "SigmaRule", "load_path", "load_rule"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later reads skip this function
    return value
