"""Compile a parsed Sigma detection (pySigma's condition tree) into our own matcher.

pySigma parses the YAML, applies the value modifiers and expands ``1 of x*`` /
``all of them`` into a tree of AND/OR/NOT over ``field = value`` leaves. This module
walks that tree once per rule and produces:

- a closure ``match(view) -> bool`` (leaves merged per field and kind, cheap tests
  first inside an AND);
- the rule's *necessary literals* in conjunctive form: a list of clauses, each a set
  of ``(field key, lower-cased string)`` pairs at least one of which must occur (the
  string in that field's lower-cased value) for the rule to be able to match; a number
  is filed under the field key + ``NUMBER_KEY`` and must be the field's number. The
  engine's per-field Aho-Corasick prefilter uses them to skip rules that cannot match
  (see ``engine.py`` and ``scan.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
)

from agentwatch.detect.fieldmap import FieldMap, FieldRef, UnmappedField
from agentwatch.detect.safe_regex import SafeRegex, UnsafeRegexError
from agentwatch.detect.sigma.leaves import NUMBER_KEY, Leaf, Matcher, anchor_char, leaf_function
from agentwatch.detect.sigma.literals import CAPITAL_SIGMA, best_alternatives, usable
from agentwatch.detect.sigma.view import EventView

MAX_EXPANSIONS = 512
MAX_CLAUSES = 6
REGEX_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}
# Rough relative cost of a leaf kind; an AND evaluates cheap children first.
KIND_COST = {"eq": 1, "ceq": 1, "num": 1, "bool": 1, "exists": 1, "null": 1, "prefix": 2, "suffix": 2}
KIND_COST |= {"cprefix": 2, "csuffix": 2, "contains": 3, "ccontains": 3, "cidr": 4, "cmp": 2, "fieldref": 4}
KIND_COST |= {"glob": 4, "cglob": 4, "wild": 6, "cwild": 6, "tspart": 6, "re": 10}


class CompileError(ValueError):
    """The rule cannot be compiled; ``field`` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None, needle: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.needle = needle  # text to look for in the YAML to report a line/column


Node = tuple  # ("and"|"or", [nodes]) | ("not", node) | ("leaf", Leaf) | ("const", bool)
Literal = tuple[str, str]  # (field key, lower-cased text that must occur in that field's value)


@dataclass
class Compiled:
    match: Matcher
    clauses: list[frozenset[Literal]]
    node: Any = None  # the simplified tree, kept so the engine can re-rank clauses corpus-wide
    refs: dict[str, FieldRef] = field(default_factory=dict)
    raw_fields: set[str] = field(default_factory=set)
    regex_engines: dict[str, int] = field(default_factory=dict)


class Compiler:
    """Compiles condition trees of rules of one logsource with one field map."""

    def __init__(self, fieldmap: FieldMap, logsource: dict) -> None:
        self.fieldmap = fieldmap
        self.logsource = logsource
        self.refs: dict[str, FieldRef] = {}
        self.raw_fields: set[str] = set()
        self.regex_engines: dict[str, int] = {}

    # -- fields -------------------------------------------------------------------
    def ref(self, name: str | None) -> FieldRef:
        if name is None:
            ref = self.fieldmap.resolve("keywords", {"product": "agentwatch"})
        else:
            try:
                ref = self.fieldmap.resolve(name, self.logsource)
            except UnmappedField as exc:
                raise CompileError(str(exc), field=name, needle=name) from None
            if ref.raw:
                self.raw_fields.add(name)
        self.refs[ref.key] = ref
        return ref

    # -- tree ---------------------------------------------------------------------
    def tree(self, cond: Any) -> Node:
        if isinstance(cond, ConditionAND):
            return ("and", [self.tree(a) for a in cond.args])
        if isinstance(cond, ConditionOR):
            return ("or", [self.tree(a) for a in cond.args])
        if isinstance(cond, ConditionNOT):
            return ("not", self.tree(cond.args[0]))
        if isinstance(cond, ConditionFieldEqualsValueExpression):
            return self.value(cond.field, cond.value, keyword=False)
        if isinstance(cond, ConditionValueExpression):
            return self.value(None, cond.value, keyword=True)
        if cond is None:
            return ("const", False)
        raise CompileError(f"unsupported condition element {type(cond).__name__}")

    def value(self, name: str | None, val: Any, *, keyword: bool) -> Node:
        if isinstance(val, SigmaExpansion):
            return ("or", [self.value(name, v, keyword=keyword) for v in val.values])
        if isinstance(val, SigmaString):
            if val.contains_placeholder():
                return ("or", [self.string(name, s, keyword) for s in self.expand(val)])
            return self.string(name, val, keyword)
        ref = self.ref(name)
        if isinstance(val, SigmaTimestampPart):
            return ("leaf", Leaf("tspart", ref, arg=(val.timestamp_part.name.lower(), int(val.number))))
        if isinstance(val, SigmaNumber):
            number = val.number
            if keyword:
                literal = str(int(number)) if float(number).is_integer() else str(number)
                return ("leaf", Leaf("contains", ref, [literal], [literal]))
            # the literal is the number itself, tested with the leaf's own parser (see NUMBER_KEY)
            try:
                literal_number: str | None = repr(float(number))
            except OverflowError:
                literal_number = None
            return ("leaf", Leaf("num", ref, [number], [literal_number]))
        if isinstance(val, SigmaBool):
            return ("leaf", Leaf("bool", ref, arg=bool(val.boolean)))
        if isinstance(val, SigmaNull):
            return ("leaf", Leaf("null", ref))
        if isinstance(val, SigmaExists):
            return ("leaf", Leaf("exists", ref, arg=bool(val.exists)))
        if isinstance(val, SigmaRegularExpression):
            if val.regexp.contains_placeholder():
                raise CompileError("placeholders inside a regular expression are not supported", field=name)
            flags = "".join(sorted(REGEX_FLAGS[f] for f in val.flags))
            try:
                rx = SafeRegex(str(val.regexp), flags)
            except UnsafeRegexError as exc:
                raise CompileError(str(exc), field=name, needle=name) from None
            self.regex_engines[rx.engine] = self.regex_engines.get(rx.engine, 0) + 1
            literals: list[str | None] = best_alternatives(str(val.regexp), flags, rx.engine) or [None]  # type: ignore[assignment]
            return ("leaf", Leaf("re", ref, [rx], literals, engine=rx.engine))
        if isinstance(val, SigmaCIDRExpression):
            return ("leaf", Leaf("cidr", ref, [val.network], [None]))
        if isinstance(val, SigmaCompareExpression):
            return ("leaf", Leaf("cmp", ref, arg=(val.op.name.lower(), float(val.number.number))))
        if isinstance(val, SigmaFieldReference):
            other = self.ref(val.field)
            return ("leaf", Leaf("fieldref", ref, arg=(other, val.starts_with, val.ends_with, False)))
        raise CompileError(f"unsupported value type {type(val).__name__}", field=name, needle=name)

    def expand(self, val: SigmaString) -> list[SigmaString]:
        """Resolve ``%placeholder%`` parts from the field map's placeholder values."""
        placeholders = self.fieldmap.placeholders

        def callback(p: Placeholder) -> Any:
            values = placeholders.get(p.name)
            if not values:
                raise CompileError(
                    f"placeholder %{p.name}% has no values (configure it in the placeholder map)",
                    needle=f"%{p.name}%",
                )
            return iter(values)

        try:
            out = val.replace_placeholders(callback)
        except SigmaError as exc:
            raise CompileError(str(exc)) from None
        if len(out) > MAX_EXPANSIONS:
            raise CompileError(f"placeholder expansion yields more than {MAX_EXPANSIONS} values")
        return out

    def string(self, name: str | None, val: SigmaString, keyword: bool) -> Node:
        ref = self.ref(name)
        cased = "c" if isinstance(val, SigmaCasedString) else ""
        parts = list(val.s)
        if keyword and not any(isinstance(p, SpecialChars) for p in parts):
            parts = [SpecialChars.WILDCARD_MULTI, *parts, SpecialChars.WILDCARD_MULTI]
        texts = [p for p in parts if isinstance(p, str)]
        specials = [p for p in parts if not isinstance(p, str)]
        if any(isinstance(p, Placeholder) for p in parts):
            raise CompileError("unresolved placeholder", field=name)
        literal = _cased_literal(texts) if cased else max(texts, key=len).lower() if texts else None
        multi = SpecialChars.WILDCARD_MULTI
        if not specials:
            text = "".join(texts)
            return ("leaf", Leaf(cased + "eq", ref, [text], [text.lower()]))
        if len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
            return ("leaf", Leaf(cased + "suffix", ref, [parts[1]], [literal]))
        if len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
            return ("leaf", Leaf(cased + "prefix", ref, [parts[0]], [literal]))
        if len(parts) == 3 and parts[0] is multi and parts[2] is multi and isinstance(parts[1], str):
            return ("leaf", Leaf(cased + "contains", ref, [parts[1]], [literal]))
        if SpecialChars.WILDCARD_SINGLE not in parts:
            # only '*': a linear fragment search (no regex engine call on the hot path)
            glob: list[str] = [""]
            for p in parts:
                if p is multi:
                    glob.append("")
                else:
                    glob[-1] += p
            return ("leaf", Leaf(cased + "glob", ref, [tuple(glob)], [literal]))
        pattern = []
        for p in parts:
            if p is multi:
                pattern.append(".*")
            elif p is SpecialChars.WILDCARD_SINGLE:
                pattern.append(".")
            else:
                pattern.append(re.escape(p if cased else p.lower()))
        return ("leaf", Leaf(cased + "wild", ref, ["".join(pattern)], [literal]))

    # -- optimisation ---------------------------------------------------------------
    def simplify(self, node: Node) -> Node:
        kind = node[0]
        if kind in ("and", "or"):
            children: list[Node] = []
            for child in (self.simplify(c) for c in node[1]):
                if child[0] == kind:
                    children.extend(child[1])
                else:
                    children.append(child)
            if kind == "or":
                children = merge_leaves(children)
            if len(children) == 1:
                return children[0]
            if kind == "and":
                children.sort(key=cost)
            return (kind, children)
        if kind == "not":
            return ("not", self.simplify(node[1]))
        return node

    def finish(self, node: Node) -> Compiled:
        node = self.simplify(node)
        clauses = best_clauses(necessary(node))
        return Compiled(
            match=function(node),
            clauses=clauses,
            node=node,
            refs=dict(self.refs),
            raw_fields=set(self.raw_fields),
            regex_engines=dict(self.regex_engines),
        )


def _cased_literal(texts: list[str]) -> str | None:
    """The prefilter literal of a case-sensitive value: its longest lower-cased piece without a capital sigma.

    The prefilter scans the lower-cased field value, and Σ lower-cases by its neighbours
    (``ς`` at the end of a word, ``σ`` elsewhere): "ΑΣ".lower() is "ας", but in "ΑΣΒ" it
    is "ασ". Every other character lower-cases on its own, so a piece without Σ occurring
    in the value occurs lower-cased in the lower-cased value.
    """
    pieces = [piece for text in texts for piece in text.split(CAPITAL_SIGMA)]
    longest = max(pieces, key=len, default="")
    return longest.lower() or None


def merge_leaves(children: list[Node]) -> list[Node]:
    groups: dict[tuple[str, str], Leaf] = {}
    out: list[Node] = []
    for child in children:
        if child[0] != "leaf":
            out.append(child)
            continue
        leaf: Leaf = child[1]
        key = leaf.merge_key()
        if key is None:
            out.append(child)
            continue
        merged = groups.get(key)
        if merged is None:
            merged = Leaf(leaf.kind, leaf.ref, list(leaf.values), list(leaf.literals))
            groups[key] = merged
            out.append(("leaf", merged))
        else:
            merged.values.extend(leaf.values)
            merged.literals.extend(leaf.literals)
    return out


def cost(node: Node) -> int:
    if node[0] == "leaf":
        leaf: Leaf = node[1]
        return KIND_COST.get(leaf.kind, 5) + (len(leaf.values) > 8)
    if node[0] == "const":
        return 0
    if node[0] == "not":
        return cost(node[1]) + 1
    return sum(cost(c) for c in node[1]) + 1


def function(node: Node) -> Matcher:
    kind = node[0]
    if kind == "leaf":
        return leaf_function(node[1])
    if kind == "const":
        value = bool(node[1])
        return lambda view: value
    if kind == "not":
        inner = function(node[1])
        return lambda view: not inner(view)
    fns = tuple(function(c) for c in node[1])
    if kind == "and":
        if len(fns) == 2:
            a, b = fns
            return lambda view: a(view) and b(view)

        def all_of(view: EventView) -> bool:
            for fn in fns:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
                if not fn(view):
                    return False
            return True

        return all_of
    if len(fns) == 2:
        a, b = fns
        return lambda view: a(view) or b(view)

    def any_of(view: EventView) -> bool:
        for fn in fns:  # noqa: SIM110 - explicit loop is faster than any()/all() on the hot path
            if fn(view):
                return True
        return False

    return any_of


Clauses = list[frozenset[Literal]]


Rank = Callable[[frozenset[Literal]], Any]


def necessary(node: Node, rank: Rank | None = None) -> Clauses:
    """Clauses (sets of literals) that must each be hit for ``node`` to be true; [] = no constraint."""
    kind = node[0]
    if kind == "leaf":
        leaf: Leaf = node[1]
        texts = [prefilter_text(leaf, lit) for lit in leaf.literals]
        if not texts or None in texts:
            return []  # a clause with a very short literal would hit almost every event: no constraint
        key = literal_key(leaf)
        return [frozenset((key, text) for text in texts)]
    if kind == "const":
        return [] if node[1] else [frozenset()]
    if kind == "not":
        return []
    children = [necessary(c, rank) for c in node[1]]
    if kind == "and":
        return [clause for sub in children for clause in sub]
    if any(not sub for sub in children):
        return []
    union: set[Literal] = set()
    for sub in children:
        union |= best_clauses(sub, rank)[0]
    return [frozenset(union)]


# Leaf kinds whose literals are lower-cased text of the field's value: a short non-ASCII
# literal (an emoji, a homoglyph) still filters well through its rarest character.
ANCHOR_KINDS = frozenset({"eq", "prefix", "suffix", "contains", "glob", "re"})


def literal_key(leaf: Leaf) -> str:
    """The key the leaf's literals are filed under: its field's, or the field's number index."""
    return leaf.ref.key + NUMBER_KEY if leaf.kind == "num" else leaf.ref.key


def prefilter_text(leaf: Leaf, literal: str | None) -> str | None:
    """What the prefilter looks for in the leaf's field for ``literal``, or None when nothing filters.

    A usable literal is looked for as it is; a shorter non-ASCII one (emoji lists,
    homoglyphs) by its first non-ASCII character, which must occur wherever it does.
    A number is looked up, not searched for: any number filters.
    """
    if leaf.kind == "num":
        return literal
    if usable(literal):
        return literal
    if literal and not literal.isascii() and leaf.kind in ANCHOR_KINDS:
        return anchor_char(literal)
    return None


def clause_rank(clause: frozenset[Literal]) -> tuple[int, int]:
    shortest = min((len(text) for _, text in clause), default=0)
    return (-min(shortest, 12), len(clause))


def best_clauses(clauses: Clauses, rank: Rank | None = None) -> Clauses:
    """The most selective clauses first (by ``rank``, default: longest shortest literal)."""
    unique = list(dict.fromkeys(clauses))
    unique.sort(key=rank or clause_rank)
    return unique[:MAX_CLAUSES]


def leaf_literals(node: Node) -> list[Literal]:
    """Every literal of every leaf of ``node`` (for corpus-wide literal popularity)."""
    if node[0] == "leaf":
        key = literal_key(node[1])
        return [(key, lit) for lit in node[1].literals if lit]
    if node[0] == "not":
        return leaf_literals(node[1])
    if node[0] in ("and", "or"):
        return [lit for child in node[1] for lit in leaf_literals(child)]
    return []


def compile_condition(trees: list[Any], compiler: Compiler, extra: list[Any] = ()) -> Compiled:
    """OR of the rule's conditions, AND each applicable filter condition."""
    nodes = [compiler.tree(t) for t in trees]
    node: Node = nodes[0] if len(nodes) == 1 else ("or", nodes)
    if extra:
        node = ("and", [node, *(compiler.tree(t) for t in extra)])
    return compiler.finish(node)
