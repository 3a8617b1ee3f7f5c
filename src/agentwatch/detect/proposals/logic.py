"""A proposal's Sigma YAML compiled by agentwatch's own Sigma compiler, as an upload would be.

The text is read by the loader ``/api/v1/sigma/rules`` uses (YAML limits, ReDoS-safe regexes,
unmapped fields refused, errors with line and column), with the same source name, so the rule
id found here is the id promotion will store. A proposal holds exactly one detection rule:
a correlation or filter would change rules it does not own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agentwatch.detect.engine import sigma_module

SOURCE = "<upload>"  # as the upload route names its rules (the id of a rule without one depends on it)


class LogicError(Exception):
    """The logic cannot be used; ``line``/``column`` (1-based) when the loader knows them."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(f"logic: {message}")
        self.message = message
        self.line = line
        self.column = column

    def details(self) -> dict[str, Any]:
        return {"field": "logic", "line": self.line, "column": self.column, "message": self.message}


@dataclass
class Compiled:
    rule: Any  # agentwatch.detect.sigma.SigmaRule
    engine: Any  # a one-rule agentwatch.detect.sigma.SigmaEngine

    @property
    def rule_id(self) -> str:
        return str(self.rule.id)

    def matches(self, event: Any) -> bool:
        return bool(self.engine.match(event))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def compile_logic(text: str, max_bytes: int) -> Compiled:
    """The one detection rule of ``text`` and a matcher of it; raises :class:`LogicError`."""
    sigma = sigma_module()
    if sigma is None:
        raise LogicError("this build has no Sigma compiler")
    try:
        rules = sigma.load_rule(text, SOURCE, max_bytes=max_bytes)
    except sigma.SigmaLoadError as exc:
        raise LogicError(exc.message, exc.line, exc.column) from None
    if len(rules) != 1 or rules[0].kind != "detection":
        kinds = ", ".join(r.kind for r in rules)
        raise LogicError(f"must be exactly one Sigma detection rule (found: {kinds})")
    engine = sigma.SigmaEngine(rules, profile=False)
    if engine.problems:
        raise LogicError(engine.problems[0].reason)
    return Compiled(rules[0], engine)
