"""The federated query language's tokenizer: one character at a time, no regular expression.

It reads string literals (with their escapes), integers, words, operators, parentheses and
commas, and refuses anything else with a :class:`QueryError` naming the rule and the position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_STRING_CHARS = 1024
MAX_INT = 2**53  # a value every target reads exactly
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
ALLOWED_CONTROLS = frozenset("\n\t\r")

Value = str | int


class QueryError(ValueError):
    """The query text breaks a rule; ``str()`` is ``query: <rule> (at character N)``."""

    def __init__(self, rule: str, position: int | None = None) -> None:
        self.rule = rule
        self.position = position
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"query: {rule}{where}")


@dataclass(frozen=True)
class Token:
    kind: Literal["word", "string", "number", "op", "lparen", "rparen", "comma", "end"]
    text: str
    pos: int
    value: Value | None = None


def _string(text: str, start: int) -> tuple[str, int]:
    """The string literal opening at ``start`` (a quote): its value and the index after it."""
    out: list[str] = []
    i = start + 1
    while True:
        if i >= len(text):
            raise QueryError("a string is not closed (a '\"' is missing)", start)
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= len(text):
                raise QueryError("a string is not closed (a '\"' is missing)", start)
            code = text[i + 1]
            if code in ESCAPES:
                out.append(ESCAPES[code])
                i += 2
            elif code == "u":
                digits = text[i + 2 : i + 6]
                if len(digits) != 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                    raise QueryError("\\u must be followed by four hex digits", i)
                ch = chr(int(digits, 16))
                if 0xD800 <= ord(ch) <= 0xDFFF:
                    raise QueryError("\\u must not name a surrogate", i)
                _check_char(ch, i)
                out.append(ch)
                i += 6
            else:
                raise QueryError(f'unknown escape \\{code[:1]!s} (use \\" \\\\ \\n \\t \\r or \\uXXXX)', i)
        else:
            _check_char(ch, i)
            out.append(ch)
            i += 1
        if len(out) > MAX_STRING_CHARS:
            raise QueryError(f"a string is longer than {MAX_STRING_CHARS} characters", start)


def _check_char(ch: str, pos: int) -> None:
    if (ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F) and ch not in ALLOWED_CONTROLS:
        raise QueryError(f"control character U+{ord(ch):04X} is not allowed (only tab, newline, return)", pos)


def tokens(text: str) -> list[Token]:
    out: list[Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "(":
            out.append(Token("lparen", ch, i))
            i += 1
        elif ch == ")":
            out.append(Token("rparen", ch, i))
            i += 1
        elif ch == ",":
            out.append(Token("comma", ch, i))
            i += 1
        elif ch == '"':
            value, end = _string(text, i)
            out.append(Token("string", text[i:end], i, value))
            i = end
        elif ch in "=!<>":
            two = text[i : i + 2]
            if two in ("!=", ">=", "<="):
                out.append(Token("op", two, i))
                i += 2
            elif ch in "=<>":
                out.append(Token("op", ch, i))
                i += 1
            else:
                raise QueryError("'!' must be followed by '=' (use NOT to negate)", i)
        elif ch == "-" or ch.isascii() and ch.isdigit():
            j = i + 1
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
            digits = text[i:j]
            if digits == "-" or (j < n and (text[j].isalpha() or text[j] in "._")):
                raise QueryError("a number must be an integer (strings are quoted)", i)
            if len(digits) > 17 or abs(int(digits)) > MAX_INT:
                raise QueryError(f"a number must be between -{MAX_INT} and {MAX_INT}", i)
            out.append(Token("number", digits, i, int(digits)))
            i = j
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(Token("word", text[i:j], i))
            i = j
        else:
            raise QueryError(f"unexpected character {ch!r}", i)
    out.append(Token("end", "", n))
    return out
