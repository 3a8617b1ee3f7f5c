"""The pySigma policy rules are read with: their regexes checked by the engines they will run on.

pySigma compiles every ``|re`` value when it reads a rule (and its own patterns, such as the
``1 of sel_*`` wildcards of conditions), with RE2 unless told otherwise, and refuses what RE2
cannot express (look-around, back-references). agentwatch runs such a pattern on the ``regex``
module under a time limit (:class:`~agentwatch.detect.safe_regex.SafeRegex`), so the check at
read time accepts exactly what ``SafeRegex`` accepts, and hands pySigma a compiled pattern of
the engine that accepted it.
"""

from __future__ import annotations

import re
from typing import Any

import regex
from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RE2RegexEngine, RegexEngine

from agentwatch.detect.safe_regex import SafeRegex, UnsafeRegexError

_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


class GuardedRegexEngine(RegexEngine):
    """RE2 first, the ``regex`` module for what RE2 cannot express (run time-limited later)."""

    def __init__(self) -> None:
        self._re2 = RE2RegexEngine()

    def compile(self, pattern: str, flags: int = 0) -> Any:
        try:
            return self._re2.compile(pattern, flags)
        except self._re2.error:
            pass
        SafeRegex(pattern, "".join(ch for flag, ch in _FLAGS if flags & flag))  # UnsafeRegexError: neither accepts it
        return regex.compile(pattern, flags | regex.VERSION0)

    @property
    def error(self) -> type[Exception]:
        return UnsafeRegexError


RULE_POLICY = SigmaPolicy(regex_engine=GuardedRegexEngine())
