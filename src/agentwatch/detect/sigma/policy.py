"""The pySigma policy rules are read with: their regexes checked by the engines they will run on.

pySigma compiles every ``|re`` value when it reads a rule, with RE2 unless told otherwise,
and refuses what RE2 cannot express (look-around, back-references). agentwatch runs such a
pattern on the ``regex`` module under a time limit (:class:`~agentwatch.detect.safe_regex.SafeRegex`),
so the check at read time accepts exactly what ``SafeRegex`` accepts.
"""

from __future__ import annotations

import re
from typing import Any

from sigma.policy import SigmaPolicy
from sigma.policy.regex_engine import RegexEngine

from agentwatch.detect.safe_regex import SafeRegex, UnsafeRegexError

_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


class GuardedRegexEngine(RegexEngine):
    """RE2 first, the time-limited ``regex`` module for what RE2 cannot express."""

    def compile(self, pattern: str, flags: int = 0) -> Any:
        letters = "".join(ch for flag, ch in _FLAGS if flags & flag)
        return SafeRegex(pattern, letters)

    @property
    def error(self) -> type[Exception]:
        return UnsafeRegexError


RULE_POLICY = SigmaPolicy(regex_engine=GuardedRegexEngine())
