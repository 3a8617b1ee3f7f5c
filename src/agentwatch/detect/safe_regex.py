"""Regular expressions for user-supplied rules that cannot hang the pipeline.

A detection rule's regex runs on every event, and the rule text comes from users
(uploads) or third parties (SigmaHQ, ATR). A backtracking engine can take
exponential time on patterns such as ``(a+)+$``, so:

1. every pattern is first compiled with google-re2 (linear time, no backtracking);
2. only when RE2 cannot express the pattern (back-references, look-around,
   possessive quantifiers, ...) it is compiled with the ``regex`` module, and each
   search runs with a wall-clock ``timeout`` and on at most ``max_input`` characters;
   a search that times out counts as "no match" and is counted in ``timeouts``.

``SafeRegex.engine`` tells which engine was chosen so a rule report can show it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import re2
import regex

DEFAULT_TIMEOUT_S = 0.05
DEFAULT_MAX_INPUT = 1 << 20
MAX_PATTERN_LEN = 8192

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20


class UnsafeRegexError(ValueError):
    """The pattern is invalid for both engines, or too long to accept."""


@dataclass
class SafeRegex:
    """One compiled pattern; ``search`` never raises and is bounded in time."""

    pattern: str
    flags: str = ""  # any of "i", "m", "s"
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_input: int = DEFAULT_MAX_INPUT
    engine: str = field(init=False)
    timeouts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if len(self.pattern) > MAX_PATTERN_LEN:
            raise UnsafeRegexError(f"regex longer than {MAX_PATTERN_LEN} characters")
        bad = set(self.flags) - set("ims")
        if bad:
            raise UnsafeRegexError(f"unknown regex flag(s) {''.join(sorted(bad))!r}")
        prefix = f"(?{''.join(sorted(set(self.flags)))})" if self.flags else ""
        try:
            self._re2 = re2.compile(prefix + self.pattern, _RE2_OPTIONS)
            self.engine = "re2"
            self._found = _re2_found(self._re2)
            return
        except re2.error:
            pass
        pyflags = 0
        for ch, flag in (("i", regex.IGNORECASE), ("m", regex.MULTILINE), ("s", regex.DOTALL)):
            if ch in self.flags:
                pyflags |= flag
        try:
            # VERSION0 keeps the semantics of Python's re (the flavour Sigma rules are written in).
            self._py = regex.compile(self.pattern, pyflags | regex.VERSION0)
        except (regex.error, re.error, OverflowError, RecursionError) as exc:
            raise UnsafeRegexError(f"invalid regex {self.pattern!r}: {exc}") from None
        self.engine = "python-regex-guarded"
        self._found = self._guarded_found

    def _guarded_found(self, text: str) -> bool:
        try:
            return self._py.search(text[: self.max_input], timeout=self.timeout_s) is not None
        except TimeoutError:
            self.timeouts += 1
            return False

    def search(self, text: str) -> bool:
        """True when the pattern occurs in ``text`` (unanchored, like ``re.search``)."""
        if len(text) > self.max_input:
            text = text[: self.max_input]
        return self._found(text)


def _re2_found(compiled: re2._Regexp) -> Callable[[str], bool]:
    """Yes/no unanchored search on the compiled RE2 program itself.

    The module's ``search`` builds a match object and maps its byte offsets back to
    characters, which costs more than the search on a command line; a detection only
    needs to know whether the pattern occurs. The text is encoded exactly as the
    module's own ``search`` encodes it.
    """
    program = getattr(compiled, "_regexp", None)
    if program is None or not hasattr(program, "Match"):  # another binding layout: the public API
        search = compiled.search
        return lambda text: search(text) is not None
    run = program.Match
    unanchored = re2._Anchor.UNANCHORED

    def found(text: str) -> bool:
        data = text.encode("utf-8")
        return run(unanchored, data, 0, len(data))[0][0] >= 0

    return found


def compile_safe(pattern: str, flags: str = "", *, timeout_s: float = DEFAULT_TIMEOUT_S) -> SafeRegex:
    """Compile ``pattern`` with the safest engine that can express it."""
    return SafeRegex(pattern, flags, timeout_s=timeout_s)
