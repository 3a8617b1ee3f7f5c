"""Compile one loaded rule (and the filters that apply to it) into a :class:`Compiled` matcher."""

from __future__ import annotations

from typing import Any

from sigma.exceptions import SigmaError

from agentwatch.detect.fieldmap import FieldMap
from agentwatch.detect.sigma.compiler import Compiled, CompileError, Compiler, compile_condition
from agentwatch.detect.sigma.loader import SigmaRule


def _trees(detections: Any) -> list[Any]:
    return [cond.parse() for cond in detections.parsed_condition]


def compile_rule(rule: SigmaRule, fieldmap: FieldMap, filters: list[SigmaRule] = ()) -> Compiled:
    """The matcher of a detection rule, AND NOT-style filters already folded in."""
    compiler = Compiler(fieldmap, rule.logsource)
    try:
        trees = _trees(rule.parsed.detection)
        extra = [t for f in filters for t in _trees(f.parsed.filter)]
    except SigmaError as exc:
        raise CompileError(str(exc).split(" in /")[0], needle="condition") from None
    return compile_condition(trees, compiler, extra)


def check_rule(rule: SigmaRule, fieldmap: FieldMap) -> tuple[str, str | None] | None:
    """(message, text to locate) when the rule cannot be compiled, else None."""
    try:
        if rule.kind == "detection":
            compile_rule(rule, fieldmap)
        elif rule.kind == "filter":
            compiler = Compiler(fieldmap, rule.logsource)
            compile_condition(_trees(rule.parsed.filter), compiler)
    except CompileError as exc:
        return str(exc), exc.needle
    except SigmaError as exc:
        return str(exc).split(" in /")[0], "condition"
    return None
