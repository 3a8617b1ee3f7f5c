"""The federated query language: a small boolean filter over agentwatch's canonical event fields.

Grammar (keywords are case-insensitive; whitespace separates tokens)::

    query      := or_expr
    or_expr    := and_expr ( "OR" and_expr )*
    and_expr   := not_expr ( "AND" not_expr )*
    not_expr   := "NOT" not_expr | primary
    primary    := "(" or_expr ")" | comparison
    comparison := FIELD OP value | FIELD "in" "(" value ( "," value )* ")"
    OP         := "=" | "!=" | "contains" | "startswith" | ">" | ">=" | "<" | "<="
    value      := STRING | INTEGER
    STRING     := '"' ( any character but '"' and '\\' | escape )* '"'
    escape     := '\\"' | '\\\\' | '\\n' | '\\t' | '\\r' | '\\uXXXX'

Example: ``event_type = "process.exec" AND (host startswith "build-" OR severity >= 7)``.

The parser is a hand-written recursive descent over a tokenizer that reads one character at a
time (no regular expression built from user text). It is bounded: the text's length, the
nesting depth, the number of comparisons, the values of an ``in`` list and a string's length.
Every refusal is a :class:`QueryError` naming the rule and the character where it was broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentwatch.federated.lexer import QueryError, Token, Value, tokens

MAX_QUERY_CHARS = 4096
MAX_DEPTH = 12
MAX_COMPARISONS = 64
MAX_IN_VALUES = 100

# Canonical event fields: name -> kind. ``text`` fields take strings, ``number`` fields integers.
FIELDS: dict[str, Literal["text", "number"]] = {
    "event_id": "text",
    "event_type": "text",
    "source": "text",
    "severity": "number",
    "session_id": "text",
    "agent": "text",
    "host": "text",
    "process": "text",
    "pid": "number",
    "trace_id": "text",
}
TEXT_OPS = frozenset({"=", "!=", "contains", "startswith", "in"})
NUMBER_OPS = frozenset({"=", "!=", ">", ">=", "<", "<=", "in"})
WORD_OPS = frozenset({"contains", "startswith", "in"})


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    values: tuple[Value, ...]  # one value, or the list of ``in``

    @property
    def value(self) -> Value:
        return self.values[0]


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Comparison | And | Or | Not


class _Parser:
    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0
        self.comparisons = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() == word

    def or_expr(self, depth: int) -> Node:
        parts = [self.and_expr(depth)]
        while self.keyword("or"):
            self.take()
            parts.append(self.and_expr(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self, depth: int) -> Node:
        parts = [self.not_expr(depth)]
        while self.keyword("and"):
            self.take()
            parts.append(self.not_expr(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def not_expr(self, depth: int) -> Node:
        if self.keyword("not"):
            tok = self.take()
            if depth + 1 > MAX_DEPTH:
                raise QueryError(f"nested deeper than {MAX_DEPTH} levels", tok.pos)
            return Not(self.not_expr(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        tok = self.peek()
        if tok.kind == "lparen":
            self.take()
            if depth + 1 > MAX_DEPTH:
                raise QueryError(f"nested deeper than {MAX_DEPTH} levels", tok.pos)
            node = self.or_expr(depth + 1)
            close = self.take()
            if close.kind != "rparen":
                raise QueryError("unbalanced parentheses: a ')' is missing", close.pos)
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        tok = self.take()
        if tok.kind == "end":
            raise QueryError("a comparison (field op value) is expected, the query ends", tok.pos)
        if tok.kind == "rparen":
            raise QueryError("unbalanced parentheses: a ')' without its '('", tok.pos)
        if tok.kind != "word" or tok.text.lower() in ("and", "or", "not"):
            raise QueryError(f"a field name is expected, not {tok.text[:32]!r}", tok.pos)
        field = tok.text
        kind = FIELDS.get(field)
        if kind is None:
            raise QueryError(f"unknown field {field[:64]!r} (fields: {', '.join(FIELDS)})", tok.pos)
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise QueryError(f"more than {MAX_COMPARISONS} comparisons", tok.pos)
        op_tok = self.take()
        op = op_tok.text.lower() if op_tok.kind == "word" and op_tok.text.lower() in WORD_OPS else None
        if op_tok.kind == "op":
            op = op_tok.text
        if op is None:
            shown = op_tok.text[:32] or "the end"
            raise QueryError(
                f"unknown operator {shown!r} (operators: = != contains startswith in > >= < <=)", op_tok.pos
            )
        allowed = TEXT_OPS if kind == "text" else NUMBER_OPS
        if op not in allowed:
            raise QueryError(f"operator {op!r} does not apply to the {kind} field {field!r}", op_tok.pos)
        if op == "in":
            return Comparison(field, op, self.value_list(field, kind))
        return Comparison(field, op, (self.value(field, kind),))

    def value_list(self, field: str, kind: str) -> tuple[Value, ...]:
        open_ = self.take()
        if open_.kind != "lparen":
            raise QueryError("'in' must be followed by a list in parentheses", open_.pos)
        values = [self.value(field, kind)]
        while self.peek().kind == "comma":
            self.take()
            values.append(self.value(field, kind))
            if len(values) > MAX_IN_VALUES:
                raise QueryError(f"an 'in' list holds more than {MAX_IN_VALUES} values", open_.pos)
        close = self.take()
        if close.kind != "rparen":
            raise QueryError("unbalanced parentheses: the 'in' list's ')' is missing", close.pos)
        return tuple(values)

    def value(self, field: str, kind: str) -> Value:
        tok = self.take()
        if tok.kind == "string" and kind == "text":
            assert isinstance(tok.value, str)  # noqa: S101 (the tokenizer's invariant, for the type checker)
            return tok.value
        if tok.kind == "number" and kind == "number":
            assert isinstance(tok.value, int)  # noqa: S101
            return tok.value
        if tok.kind in ("string", "number"):
            want = "a quoted string" if kind == "text" else "an integer"
            raise QueryError(f"field {field!r} takes {want}", tok.pos)
        raise QueryError("a value (a quoted string or an integer) is expected", tok.pos)


def parse(text: str) -> Node:
    """The AST of ``text``, or :class:`QueryError` naming the rule."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError("must not be empty")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"longer than {MAX_QUERY_CHARS} characters")
    parser = _Parser(tokens(text))
    node = parser.or_expr(0)
    tail = parser.peek()
    if tail.kind == "rparen":
        raise QueryError("unbalanced parentheses: a ')' without its '('", tail.pos)
    if tail.kind != "end":
        raise QueryError(f"AND or OR expected before {tail.text[:32]!r}", tail.pos)
    return node


def fields_of(node: Node) -> set[str]:
    """The canonical fields the query names."""
    if isinstance(node, Comparison):
        return {node.field}
    if isinstance(node, Not):
        return fields_of(node.part)
    out: set[str] = set()
    for part in node.parts:
        out |= fields_of(part)
    return out
