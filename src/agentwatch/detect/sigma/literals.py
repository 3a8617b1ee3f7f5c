"""Necessary literals of a regular expression, for the prefilter.

A rule made only of ``|re`` values would otherwise be evaluated on every event. Most
such patterns still require some plain text (``ipconfig\\s+/all`` cannot match without
``ipconfig``). This walks the pattern with Python's own regex parser and returns
clauses in the same form as ``compiler.necessary``: each clause is a set of lower-case
strings, one of which must occur. Anything the walk does not understand yields no
clause, which is always safe (the rule is then simply evaluated).
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+: the parser lives in re._parser
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - older layouts
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MIN_LITERAL = 3
# ASCII characters rare enough in real field values that even a one-character literal filters well.
RARE_ASCII = frozenset("`^{}~$|")
Clauses = list[frozenset[str]]


def usable(literal: str | None) -> bool:
    """Worth putting in the Aho-Corasick prefilter (long enough, or made of rare characters)."""
    if not literal:
        return False
    if len(literal) >= MIN_LITERAL:
        return True
    return literal.isascii() and any(c in RARE_ASCII for c in literal)


def keep_run(run: str) -> bool:
    """A literal run worth reporting: usable, or short but non-ASCII (see ``compiler.prefilter_text``)."""
    return usable(run) or not run.isascii()


_LITERAL = sre_constants.LITERAL
_IN = sre_constants.IN
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, getattr(sre_constants, "POSSESSIVE_REPEAT", None))
_ATOMIC = getattr(sre_constants, "ATOMIC_GROUP", None)


def _class_char(items: list[tuple[Any, Any]]) -> str | None:
    """``[Ii]``-style classes that stand for one letter in any case."""
    chars = {chr(v).lower() for op, v in items if op is _LITERAL}
    if len(chars) == 1 and all(op is _LITERAL for op, _ in items):
        return chars.pop()
    return None


def _seq(items: Any) -> Clauses:
    clauses: Clauses = []
    run: list[str] = []

    def flush() -> None:
        if run and keep_run("".join(run)):
            clauses.append(frozenset({"".join(run)}))
        run.clear()

    for op, av in items:
        if op is _LITERAL:
            run.append(chr(av).lower())
            continue
        if op is _IN:
            ch = _class_char(av)
            if ch is not None:
                run.append(ch)
                continue
        flush()
        if op is _SUBPATTERN:
            clauses.extend(_seq(av[-1]))
        elif _ATOMIC is not None and op is _ATOMIC:
            clauses.extend(_seq(av))
        elif op is _BRANCH:
            branches = [_best(_seq(b)) for b in av[1]]
            if branches and all(b is not None for b in branches):
                clauses.append(frozenset().union(*branches))  # type: ignore[arg-type]
        elif op in _REPEATS and av[0] >= 1:
            clauses.extend(_seq(av[2]))
    flush()
    return clauses


def _best(clauses: Clauses) -> frozenset[str] | None:
    if not clauses:
        return None
    return min(clauses, key=lambda c: (not all(usable(x) for x in c), -min(len(x) for x in c), len(c)))


def regex_clauses(pattern: str, flags: str = "") -> Clauses:
    """Clauses of literals one of which must occur (lower-cased) wherever ``pattern`` matches."""
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE if "i" in flags else 0)
    except (re.error, RecursionError, OverflowError, ValueError):
        return []
    try:
        return _seq(parsed)
    except (RecursionError, TypeError, IndexError):
        return []


def best_alternatives(pattern: str, flags: str = "") -> list[str] | None:
    """The best single clause as a list of alternatives (for a leaf's literal list), or None."""
    best = _best(regex_clauses(pattern, flags))
    return sorted(best) if best else None
