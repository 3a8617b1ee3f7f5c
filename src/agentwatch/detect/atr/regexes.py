"""Rule regexes compiled for linear-time matching, with Python ``re`` semantics kept.

ATR (and agentwatch pack) patterns are written for Python's ``re``. Untrusted text
(prompts, tool results) is matched against them, so a backtracking engine would
let an attacker pick the cost of a match. We therefore translate each pattern to
RE2 syntax, keeping Python's Unicode meaning of ``\\w``, ``\\d``, ``\\s`` and
``$``, and compile it with google-re2. Patterns RE2 cannot express (lookaround,
back-references) fall back to the ``regex`` module, whose searches take a
timeout, so the worst case is bounded and counted instead of unbounded.

Like the ATR reference engine, a leading inline-flag group (``(?i)``, ``(?s)``...)
is dropped and every pattern is case-insensitive.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import re2
import regex

LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")
WORD = r"\p{L}\p{N}_"
SPACE = r"\s\x0b\x1c-\x1f\x85\p{Z}"
FALLBACK_TIMEOUT_S = 0.05
MAX_PATTERN = 16_384


class Unsupported(ValueError):
    """The pattern needs a feature RE2 lacks; it is matched by the bounded fallback."""


def to_re2(pattern: str) -> str:
    """Python ``re`` syntax -> RE2 syntax with the same meaning, or raise Unsupported."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_start = 0
    class_marker = 0
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise Unsupported("trailing backslash")
            e = pattern[i + 1]
            i += 2
            if e in "uU":
                width = 4 if e == "u" else 8
                hexdigits = pattern[i : i + width]
                if len(hexdigits) != width or not all(h in "0123456789abcdefABCDEF" for h in hexdigits):
                    raise Unsupported("bad \\u escape")
                out.append("\\x{" + hexdigits + "}")
                i += width
            elif e == "w":
                out.append(WORD if in_class else f"[{WORD}]")
            elif e == "d":
                out.append(r"\p{Nd}")
            elif e == "s":
                out.append(SPACE if in_class else f"[{SPACE}]")
            elif e in "WSD":
                if in_class:
                    body = pattern[class_start:]
                    pair = {"W": "\\w", "S": "\\s", "D": "\\d"}[e]
                    if body.startswith((pair + "\\" + e + "]", "\\" + e + pair + "]")):
                        # [\s\S] and friends: any character at all
                        out[class_marker:] = ["\\x{0}-\\x{10FFFF}"]
                        i = class_start + 4
                        continue
                    raise Unsupported(f"negated \\{e} inside a class")
                out.append({"W": f"[^{WORD}]", "S": f"[^{SPACE}]", "D": r"\P{Nd}"}[e])
            elif e == "Z":
                out.append(r"\z")
            elif e == "b" and in_class:
                out.append(r"\x08")
            elif e.isdigit() and e != "0":
                raise Unsupported("back-reference")
            elif e == "N":
                raise Unsupported("named character escape")
            else:
                out.append("\\" + e)
            continue
        if in_class:
            if c == "]" and i > class_start:
                in_class = False
            elif c == "[" and pattern[i + 1 : i + 2] == ":":
                out.append("\\[")
                i += 1
                continue
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            class_start = i
            class_marker = len(out)
            if i < n and pattern[i] == "]":  # a leading ] is a literal in Python
                out.append("\\]")
                i += 1
                class_start = i
            continue
        if c == "$":
            out.append(r"(?:\n?\z)")
            i += 1
            continue
        if c == "{" and pattern[i + 1 : i + 2] == ",":
            m = re.match(r"\{,(\d+)\}", pattern[i:])
            if m:
                out.append("{0," + m.group(1) + "}")
                i += len(m.group(0))
                continue
        if c == "(" and pattern[i + 1 : i + 2] == "?":
            rest = pattern[i + 2 : i + 4]
            if rest[:1] in ("=", "!", ">") or rest in ("<=", "<!"):
                raise Unsupported("lookaround or atomic group")
            m = re.match(r"\(\?[aiLmsux]+\)", pattern[i:])
            if m:  # a global flag not at the start
                raise Unsupported("global inline flag")
        out.append(c)
        i += 1
    if in_class:
        raise Unsupported("unterminated character class")
    return "".join(out)


def _group_end(pattern: str, start: int) -> int:
    """Index just past the group opened at ``start`` (escapes, classes and nesting respected)."""
    depth, i, n, in_class = 0, start, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise Unsupported("unbalanced group")


def necessary(pattern: str) -> str:
    """A pattern every match of ``pattern`` also matches: look-arounds dropped, atomic groups made plain.

    A look-around only forbids matches, so without it the pattern accepts a superset; RE2 can
    run that superset as a prefilter and the slow engine only sees texts that pass it."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            for lead in ("^", "]"):
                if pattern[i : i + 1] == lead:
                    out.append(lead)
                    i += 1
            continue
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            i = _group_end(pattern, i)
            if pattern[i : i + 1] in ("?", "*", "+"):
                i += 1
            continue
        elif pattern.startswith("(?>", i):
            out.append("(?:")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def options() -> re2.Options:
    opts = re2.Options()
    opts.case_sensitive = False
    opts.max_mem = 64 << 20
    opts.log_errors = False
    return opts


def strip_flags(pattern: str) -> str:
    return LEADING_FLAGS.sub("", pattern, count=1)


@dataclass
class Compiled:
    """One pattern: RE2 when expressible, else the bounded fallback.

    The RE2 object itself is built on first use: engines add ``re2_pattern`` to a
    shared ``re2.Filter`` and rarely need it, and compiling thousands of
    Unicode-aware patterns twice would double the load time."""

    source: str
    re2_pattern: str | None
    slow: regex.Pattern[str] | None = None
    pre_pattern: str | None = None  # RE2 superset of a slow pattern: texts it rejects cannot match
    timeouts: int = 0
    reason: str = ""
    _fast: re2._Regexp | None = None

    @property
    def fast(self) -> re2._Regexp | None:
        if self._fast is None and self.re2_pattern is not None:
            self._fast = re2.compile(self.re2_pattern, options())
        return self._fast

    def search(self, text: str) -> bool:
        if self.re2_pattern is not None:
            return self.fast.search(text) is not None  # type: ignore[union-attr]
        assert self.slow is not None
        try:
            return self.slow.search(text, timeout=FALLBACK_TIMEOUT_S) is not None
        except TimeoutError:
            self.timeouts += 1
            return False


def _fallback(pattern: str, cleaned: str, reason: str) -> Compiled:
    try:
        slow = regex.compile(cleaned, regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    pre: str | None = None
    try:
        pre = to_re2(necessary(cleaned))
        re2.compile(pre, options())
    except (Unsupported, re2.error):
        pre = None
    return Compiled(pattern, None, slow=slow, reason=reason, pre_pattern=pre)


@functools.lru_cache(maxsize=8192)
def compile_pattern(pattern: str, *, validate: bool = True) -> Compiled:
    """Compile one rule pattern; raises ValueError when neither engine accepts it.

    With ``validate=False`` the RE2 translation is not compiled here: the caller
    (a matcher adding it to an ``re2.Filter``) finds out, and calls
    :func:`fallback_for` when RE2 refuses it. Cached: every engine in the process
    shares the work."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"pattern longer than {MAX_PATTERN} characters")
    cleaned = strip_flags(pattern)
    try:
        compiled = Compiled(pattern, to_re2(cleaned))
        if validate:
            compiled.fast  # noqa: B018 - compiling is the validation
        return compiled
    except (Unsupported, re2.error) as exc:
        return _fallback(pattern, cleaned, str(exc))


@functools.lru_cache(maxsize=8192)
def fallback_for(pattern: str, reason: str) -> Compiled:
    """The bounded fallback of a pattern whose RE2 translation RE2 refused."""
    return _fallback(pattern, strip_flags(pattern), reason)
