"""Compile one loaded rule (and the filters that apply to it) into a :class:`Compiled` matcher."""

from __future__ import annotations

import re
from typing import Any

from sigma.exceptions import SigmaError

from agentwatch.detect.fieldmap import FieldMap
from agentwatch.detect.sigma.compiler import Compiled, CompileError, Compiler, compile_condition
from agentwatch.detect.sigma.loader import SigmaRule

MAX_CONDITION_DEPTH = 32  # pySigma's parser recurses per ``not``/group; it overflows near 200
MAX_CONDITION_CHARS = 8192  # SigmaHQ's longest is about 550
_TOKEN = re.compile(r"[()]|[^\s()]+")


def _nesting(text: str, limit: int) -> int:
    """Depth of the parse tree ``text`` gives, counting each ``not`` and each group; stops past ``limit``."""
    pending = [0]  # ``not``s waiting for their operand, per open group
    deepest = 0
    for part in _TOKEN.findall(text):
        word = part.lower()
        if word == "(":
            pending.append(0)
        elif word == ")":
            if len(pending) > 1:
                pending.pop()
            pending[-1] = 0
            continue
        elif word == "not":
            pending[-1] += 1
        else:  # an operand starts (or ``and``/``or``): the ``not``s before it are applied
            if word not in ("and", "or"):
                pending[-1] = 0
            continue
        deepest = max(deepest, len(pending) - 1 + sum(pending))
        if deepest > limit:
            break
    return deepest


def condition_problem(value: Any, field: str = "detection.condition") -> str | None:
    """Why a condition (string or list of strings) cannot be parsed safely, naming ``field``; else None."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(c, str) for c in items):
        return f"{field}: must be a string or a list of strings"
    for text in items:
        if len(text) > MAX_CONDITION_CHARS:
            return f"{field}: longer than {MAX_CONDITION_CHARS} characters"
        if _nesting(text, MAX_CONDITION_DEPTH) > MAX_CONDITION_DEPTH:
            return f"{field}: nested deeper than {MAX_CONDITION_DEPTH}"
    return None


def _trees(detections: Any, field: str = "detection.condition") -> list[Any]:
    problem = condition_problem(detections.condition, field)
    if problem is not None:
        raise CompileError(problem, needle="condition")
    return [cond.parse() for cond in detections.parsed_condition]


def compile_rule(rule: SigmaRule, fieldmap: FieldMap, filters: list[SigmaRule] = ()) -> Compiled:
    """The matcher of a detection rule, AND NOT-style filters already folded in."""
    compiler = Compiler(fieldmap, rule.logsource)
    try:
        trees = _trees(rule.parsed.detection)
        extra = [t for f in filters for t in _trees(f.parsed.filter, "filter.condition")]
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
            compile_condition(_trees(rule.parsed.filter, "filter.condition"), compiler)
    except CompileError as exc:
        return str(exc), exc.needle
    except SigmaError as exc:
        return str(exc).split(" in /")[0], "condition"
    return None
