"""Necessary literals of a regular expression, for the prefilter.

A rule made only of ``|re`` values would otherwise be evaluated on every event. Most
such patterns still require some plain text (``ipconfig\\s+/all`` cannot match without
``ipconfig``). This walks the pattern with Python's own regex parser and returns
clauses in the same form as ``compiler.necessary``: each clause is a set of lower-case
strings, one of which must occur. Anything the walk does not understand yields no
clause, which is always safe (the rule is then simply evaluated).

The prefilter looks for the literals in the field's *lower-cased* value, and the
regex runs on the value as it is, so each pattern character stands for every string
it can turn into there (``lower_forms``): ``str.lower`` is per character except for
the Greek capital sigma, which becomes ``ς`` at the end of a word and ``σ`` elsewhere,
and a case-insensitive regex also matches the other members of the character's case
folding orbit (``(?i)s`` matches ``ſ``, which stays ``ſ`` when lower-cased). A run of
literal characters yields every combination of those forms (up to ``MAX_VARIANTS``),
or is cut at the characters with several forms.
"""

from __future__ import annotations

import re
import warnings
from functools import cache
from itertools import product
from typing import Any

import re2
import regex

try:  # Python 3.11+: the parser lives in re._parser
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - older layouts
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

MIN_LITERAL = 3
# ASCII characters rare enough in real field values that even a one-character literal filters well.
RARE_ASCII = frozenset("`^{}~$|")
MAX_VARIANTS = 8  # spellings of one literal run before it is cut at its many-form characters
MAX_CLASS_FORMS = 4  # a class of single characters ([Ii], [o0]) with at most this many forms joins a run
Clauses = list[frozenset[str]]
CAPITAL_SIGMA = "\u03a3"
RE2 = "re2"


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


def cased_forms(ch: str) -> frozenset[str]:
    """What ``ch`` of a value can be in the value's lower-cased form (Σ depends on its neighbours)."""
    if ch == CAPITAL_SIGMA:
        return frozenset({"\u03c3", "\u03c2"})  # σ inside a word, ς at its end
    return frozenset({ch.lower()})


@cache
def _planes() -> str:
    """Every character of Unicode planes 0 and 1 (all cased scripts live there)."""
    return "".join(chr(i) for i in range(0x20000) if not 0xD800 <= i < 0xE000)


@cache
def fold_orbit(ch: str, engine: str | None) -> frozenset[str]:
    """The characters a case-insensitive ``engine`` regex matches for ``ch`` (both engines when None).

    Asked of the engine itself: its case folding tables (and Unicode version) are what decides.
    """
    if ch.isascii() and not ch.isalpha():
        return frozenset({ch})
    found = {ch}
    if engine in (None, RE2):
        found.update(re2.compile("(?i)" + re.escape(ch)).findall(_planes()))
    if engine != RE2:
        found.update(regex.compile(re.escape(ch), regex.IGNORECASE | regex.VERSION0).findall(_planes()))
    return frozenset(found)


def lower_forms(ch: str, folded: bool, engine: str | None = None) -> frozenset[str]:
    """Every string pattern character ``ch`` can be in the lower-cased text it matched in."""
    if not folded:
        return cased_forms(ch)
    return frozenset().union(*(cased_forms(d) for d in fold_orbit(ch, engine)))


def _class_forms(items: list[tuple[Any, Any]], folded: bool, engine: str | None) -> frozenset[str] | None:
    """``[Ii]``-style classes of single characters: the forms of all of them, if few."""
    if not all(op is _LITERAL for op, _ in items):
        return None
    forms = frozenset().union(*(lower_forms(chr(v), folded, engine) for _, v in items))
    return forms if len(forms) <= MAX_CLASS_FORMS else None


def _run_clauses(run: list[frozenset[str]]) -> Clauses:
    """Clauses for a run of literal characters, each given by its set of lower-cased forms."""
    count = 1
    for forms in run:
        count *= len(forms)
        if count > MAX_VARIANTS:
            break
    if count <= MAX_VARIANTS:
        variants = frozenset("".join(p) for p in product(*run))
        return [variants] if variants and all(keep_run(v) for v in variants) else []
    clauses: Clauses = []
    start = 0
    for i, forms in enumerate([*run, frozenset()]):  # cut at every character with several forms
        if len(forms) != 1:
            clauses.extend(_run_clauses(run[start:i]) if i > start else [])
            start = i + 1
    return clauses


def _seq(items: Any, folded: bool, engine: str | None) -> Clauses:
    clauses: Clauses = []
    run: list[frozenset[str]] = []

    def flush() -> None:
        if run:
            clauses.extend(_run_clauses(run))
        run.clear()

    for op, av in items:
        if op is _LITERAL:
            run.append(lower_forms(chr(av), folded, engine))
            continue
        if op is _IN:
            forms = _class_forms(av, folded, engine)
            if forms is not None:
                run.append(forms)
                continue
        flush()
        if op is _SUBPATTERN:
            _group, add, remove, sub = av
            inner = (folded or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
            clauses.extend(_seq(sub, inner, engine))
        elif _ATOMIC is not None and op is _ATOMIC:
            clauses.extend(_seq(av, folded, engine))
        elif op is _BRANCH:
            branches = [_best(_seq(b, folded, engine)) for b in av[1]]
            if branches and all(b is not None for b in branches):
                clauses.append(frozenset().union(*branches))  # type: ignore[arg-type]
        elif op in _REPEATS and av[0] >= 1:
            clauses.extend(_seq(av[2], folded, engine))
    flush()
    return clauses


def _best(clauses: Clauses) -> frozenset[str] | None:
    if not clauses:
        return None
    return min(clauses, key=lambda c: (not all(usable(x) for x in c), -min(len(x) for x in c), len(c)))


def regex_clauses(pattern: str, flags: str = "", engine: str | None = None) -> Clauses:
    """Clauses of literals one of which must occur (lower-cased) wherever ``pattern`` matches.

    ``engine`` is the engine the pattern runs on (``SafeRegex.engine``): its case folding
    decides what a case-insensitive character matches.
    """
    try:
        with warnings.catch_warnings():
            # Python warns where its syntax differs from RE2's: "[[:digit:]]x" is a POSIX class
            # followed by "x" for RE2 but a set followed by "]x" for Python; no clauses then.
            warnings.simplefilter("error")
            parsed = sre_parse.parse(pattern, re.IGNORECASE if "i" in flags else 0)
    except (re.error, RecursionError, OverflowError, ValueError, Warning):
        return []
    try:
        return _seq(parsed, bool(parsed.state.flags & re.IGNORECASE), engine)
    except (RecursionError, TypeError, IndexError):
        return []


def best_alternatives(pattern: str, flags: str = "", engine: str | None = None) -> list[str] | None:
    """The best single clause as a list of alternatives (for a leaf's literal list), or None."""
    best = _best(regex_clauses(pattern, flags, engine))
    return sorted(best) if best else None
