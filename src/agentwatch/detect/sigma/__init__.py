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
"""

from agentwatch.detect.sigma.engine import SigmaEngine
from agentwatch.detect.sigma.loader import SigmaLoadError, SigmaRule, load_path, load_rule

__all__ = ["SigmaEngine", "SigmaLoadError", "SigmaRule", "load_path", "load_rule"]
